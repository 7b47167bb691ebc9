/**
 * The openssl CLI as our certificates use it: the local stacks' CA and
 * certificates (scripts/local-tls.ts), the HTTPS tests' (test/support/tls-certs.ts)
 * and the TLS benchmark's (bench/tls.ts). One key type everywhere, EC P-256:
 * quick to make, and what Mozilla's modern and intermediate profiles prefer.
 */
import { execFileSync } from "node:child_process";

/** `-newkey` arguments for an EC P-256 key, or RSA 2048 where a test needs RSA suites. */
export function newKey(rsa = false): string[] {
  return rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
}

/** Runs openssl in `dir`; a failure says what openssl said. */
export function openssl(dir: string, args: string[]): void {
  try {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args[0]} failed in ${dir}: ${err.stderr?.toString().trim() || err.message}`, { cause: e });
  }
}

/** A self-signed certificate and its new key (a CA, or a benchmark's server), with `-addext` extensions. */
export function selfSigned(dir: string, o: { key: string; cert: string; days: number; subject: string; extensions?: string[] }): void {
  const ext = (o.extensions ?? []).flatMap((x) => ["-addext", x]);
  openssl(dir, ["req", "-x509", ...newKey(), "-nodes", "-keyout", o.key, "-out", o.cert, "-days", String(o.days), "-subj", o.subject, ...ext]);
}

/** A new key and a signing request for it, for a CA to sign. */
export function keyAndRequest(dir: string, o: { key: string; csr: string; subject: string; rsa?: boolean }): void {
  openssl(dir, ["req", ...newKey(o.rsa), "-nodes", "-keyout", o.key, "-out", o.csr, "-subj", o.subject]);
}

/** subjectAltName's value for host names and IPv4 addresses. */
export function subjectAltName(names: readonly string[]): string {
  return names.map((n) => (/^[0-9.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
}
