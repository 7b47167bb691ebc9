/**
 * Certificates for the HTTPS tests, made with the openssl CLI in a temporary
 * folder: a CA and leaves it signs, for any names and any validity window
 * (`openssl ca` takes explicit start and end dates, so expired and not-yet-valid
 * certificates are real ones, not a mocked clock).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { keyAndRequest, openssl, selfSigned, subjectAltName } from "../../scripts/openssl";

export interface TestLeaf {
  cert: string;
  key: string;
  /** The leaf then the CA: what balancer.tls.certificate takes. */
  chain: string;
}

export interface LeafOptions {
  notBefore?: Date;
  notAfter?: Date;
  rsa?: boolean;
}

export class TestCa {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-tls-"));
  readonly cert: string;
  private n = 0;

  constructor(name = "drupal-cluster test CA") {
    selfSigned(this.dir, { key: "ca.key", cert: "ca.crt", days: 3, subject: `/CN=${name}` });
    fs.writeFileSync(path.join(this.dir, "index.txt"), "");
    fs.writeFileSync(path.join(this.dir, "serial"), "1000\n");
    fs.writeFileSync(
      path.join(this.dir, "ca.cnf"),
      [
        "[ca]",
        "default_ca = local",
        "[local]",
        "database = index.txt",
        "new_certs_dir = .",
        "serial = serial",
        "default_md = sha256",
        "policy = any",
        "unique_subject = no",
        "[any]",
        "commonName = supplied",
        "",
      ].join("\n"),
    );
    this.cert = this.read("ca.crt");
  }

  private read(file: string): string {
    return fs.readFileSync(path.join(this.dir, file), "utf8");
  }

  /** A server certificate for `names` (DNS names or IPv4 addresses), valid a day either side of now unless told. */
  leaf(names: string[], opts: LeafOptions = {}): TestLeaf {
    const base = `leaf${++this.n}`;
    const day = 86_400_000;
    const from = opts.notBefore ?? new Date(Date.now() - day);
    const to = opts.notAfter ?? new Date(Date.now() + day);
    fs.writeFileSync(path.join(this.dir, `${base}.ext`), `subjectAltName=${subjectAltName(names)}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    keyAndRequest(this.dir, { key: `${base}.key`, csr: `${base}.csr`, subject: `/CN=${names[0]}`, rsa: opts.rsa });
    const stamp = (d: Date): string => d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
    openssl(this.dir, [
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-cert",
      "ca.crt",
      "-keyfile",
      "ca.key",
      "-in",
      `${base}.csr`,
      "-out",
      `${base}.crt`,
      "-startdate",
      stamp(from),
      "-enddate",
      stamp(to),
      "-extfile",
      `${base}.ext`,
      "-notext",
    ]);
    const cert = this.read(`${base}.crt`);
    return { cert, key: this.read(`${base}.key`), chain: `${cert}${this.cert}` };
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
