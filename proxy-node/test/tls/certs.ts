// Certificates for the TLS tests, made with the openssl CLI into a temporary
// folder: a CA, and leaves it signs for the names asked (EC P-256: fast to make).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface Leaf {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

export interface TestCa {
  dir: string;
  cert: string;
  certPem: string;
  leaf(names: string[], opts?: { days?: number; file?: string; rsa?: boolean }): Leaf;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export function makeCa(): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-tls-"));
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=proxy-node test CA",
    ],
    dir,
  );
  let n = 0;
  return {
    dir,
    cert: path.join(dir, "ca.crt"),
    certPem: fs.readFileSync(path.join(dir, "ca.crt"), "utf8"),
    leaf(names, opts = {}) {
      const base = opts.file ?? `leaf${++n}`;
      const san = names.map((x) => (/^[0-9.]+$/.test(x) ? `IP:${x}` : `DNS:${x}`)).join(",");
      fs.writeFileSync(path.join(dir, `${base}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
      const keyType = opts.rsa ? ["rsa:2048"] : ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
      openssl(["req", "-newkey", ...keyType, "-nodes", "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${names[0]}`], dir);
      openssl(
        [
          "x509",
          "-req",
          "-in",
          `${base}.csr`,
          "-CA",
          "ca.crt",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${base}.crt`,
          "-days",
          String(opts.days ?? 2),
          "-extfile",
          `${base}.ext`,
        ],
        dir,
      );
      const cert = path.join(dir, `${base}.crt`);
      const key = path.join(dir, `${base}.key`);
      return { cert, key, certPem: fs.readFileSync(cert, "utf8"), keyPem: fs.readFileSync(key, "utf8") };
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
