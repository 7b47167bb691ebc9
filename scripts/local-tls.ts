/**
 * HTTPS for local stacks: a certificate authority of this machine and a
 * certificate for the stack's serverName, made with the openssl CLI in the
 * git-ignored .secrets/<stack>-tls/ (mode 0700; the keys 0600). `npm run up`
 * puts the certificate into the stack's balancer.tls and the key into the
 * secret tlsPrivateKey, and prints the CA's path for `curl --cacert` or a
 * browser's trust store. Nothing leaves this machine, nothing is downloaded.
 */
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { keyAndRequest, openssl, selfSigned, subjectAltName } from "./openssl";

export interface LocalTls {
  /** The CA certificate: what a client trusts (`curl --cacert <caCert>`). */
  caCert: string;
  /** The server's certificate, PEM: balancer.tls.certificate. */
  certificate: string;
  /** Its private key, PEM: the secret tlsPrivateKey. */
  privateKey: string;
}

/** A leaf with less left than this is made again: rotation before expiry, by `up`. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const LEAF_DAYS = 365;
const CA_DAYS = 3650;

export function localTlsDir(root: string, stack: string): string {
  return path.join(root, ".secrets", `${stack}-tls`);
}

function usable(certFile: string, caFile: string, serverName: string, now: number): boolean {
  if (!fs.existsSync(certFile)) return false;
  try {
    const leaf = new X509Certificate(fs.readFileSync(certFile));
    const ca = new X509Certificate(fs.readFileSync(caFile));
    const forName = /^[0-9.]+$/.test(serverName) ? leaf.checkIP(serverName) : leaf.checkHost(serverName, { subject: "never" });
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey) && forName !== undefined && new Date(leaf.validTo).getTime() - now > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

/**
 * The stack's CA and server certificate, made when missing, and the certificate
 * made again when it is not for serverName any more, not from this CA, or
 * within 30 days of its end. The CA stays, so a browser that trusts it once
 * keeps trusting the stack's next certificates.
 */
export function localTls(root: string, stack: string, serverName: string, now = Date.now()): LocalTls {
  const dir = localTlsDir(root, stack);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const ca = path.join(dir, "ca.crt");
  if (!fs.existsSync(ca) || !fs.existsSync(path.join(dir, "ca.key"))) {
    selfSigned(dir, {
      key: "ca.key",
      cert: "ca.crt",
      days: CA_DAYS,
      subject: `/CN=drupal-cluster local CA (stack ${stack})`,
      extensions: ["basicConstraints=critical,CA:TRUE,pathlen:0", "keyUsage=critical,keyCertSign,cRLSign"],
    });
  }
  const cert = path.join(dir, "balancer.crt");
  if (!usable(cert, ca, serverName, now)) {
    const names = [serverName, ...(serverName === "localhost" ? [] : ["localhost"])];
    const san = subjectAltName(names);
    fs.writeFileSync(
      path.join(dir, "balancer.ext"),
      `subjectAltName=${san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
    );
    keyAndRequest(dir, { key: "balancer.key", csr: "balancer.csr", subject: `/CN=${serverName}` });
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      "balancer.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      String(LEAF_DAYS),
      "-extfile",
      "balancer.ext",
      "-out",
      "balancer.crt",
    ]);
  }
  for (const key of ["ca.key", "balancer.key"]) fs.chmodSync(path.join(dir, key), 0o600);
  return { caCert: ca, certificate: fs.readFileSync(cert, "utf8"), privateKey: fs.readFileSync(path.join(dir, "balancer.key"), "utf8") };
}
