/**
 * HTTPS at the balancer: `balancer.tls` (the certificate chain and the settings)
 * and the secret `tlsPrivateKey`. A certificate that could not serve this
 * cluster (expired, not yet valid, not for serverName, not matching its key) is a
 * ConfigError naming the key, before anything is created: on the host it would
 * only show as a balancer that does not start, or as browsers refusing the site.
 */
import { createPrivateKey, KeyObject, X509Certificate } from "node:crypto";
import { INTERMEDIATE_CIPHERS as PROXY_NODE_DEFAULT_CIPHERS } from "../../proxy-node/src/config";
import { ConfigError } from "./errors";
import { isOrigin, quote } from "./grammar";
import { ConfigReader } from "./reader";
import { checkDistinctPorts } from "./ports";
import { BalancerModel, Target, TlsModel, TlsVersion } from "../model/types";

/**
 * Mozilla's "intermediate" TLS 1.2 suites, proxy-node's default (one list for
 * both engines). `balancer.tls.ciphers` may narrow them, never add to them: the
 * scanner in the real-cluster suite must find no weak suite on either engine.
 */
export const INTERMEDIATE_CIPHERS: readonly string[] = PROXY_NODE_DEFAULT_CIPHERS.split(":");

const TLS_KEYS = ["certificate", "httpsPort", "url", "redirect", "hstsMaxAge", "minVersion", "ciphers"];
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** What the checks compare validity against; tests pass a fixed time. */
export type Clock = () => Date;

/** The chain's certificates, leaf first, or a ConfigError naming the key. */
export function parseChain(key: string, pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0)
    throw new ConfigError(key, "is not a PEM certificate chain; use the server's certificate, then its intermediates, each -----BEGIN CERTIFICATE-----");
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new ConfigError(key, `certificate ${i + 1} of the chain cannot be read: ${(e as Error).message}`);
    }
  });
}

/**
 * `balancer.tls`, or undefined when it is not set (HTTPS off). Checks everything
 * the certificate alone decides: readable, valid now, valid for serverName, and a
 * chain in order (each certificate issued by the next).
 */
export function readTls(b: ConfigReader, target: Target, serverName: string, publicHost: string, now: Clock = () => new Date()): TlsModel | undefined {
  if (!b.has("tls")) return undefined;
  const t = b.child("tls");
  if (target === "docker")
    throw new ConfigError(t.key, "is built for target ssh only (the docker target publishes no HTTPS port); remove it for target docker");
  t.onlyKeys(TLS_KEYS);
  const certKey = `${t.key}.certificate`;
  const certificate = t.string("certificate");
  const chain = parseChain(certKey, certificate);
  const leaf = chain[0];
  const at = now();
  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  if (at < from) throw new ConfigError(certKey, `is not valid yet: valid from ${leaf.validFrom}; use a certificate valid now`);
  if (at > to) throw new ConfigError(certKey, `expired on ${leaf.validTo}; renew it and set the new chain`);
  const forName = /^[0-9.]+$/.test(serverName) ? leaf.checkIP(serverName) : leaf.checkHost(serverName, { subject: "never" });
  if (forName === undefined) {
    throw new ConfigError(
      certKey,
      `is not valid for serverName ${quote(serverName)} (it names ${leaf.subjectAltName ?? leaf.subject}); use a certificate whose subjectAltName holds it`,
    );
  }
  for (let i = 1; i < chain.length; i++) {
    if (!chain[i - 1].checkIssued(chain[i])) {
      throw new ConfigError(
        certKey,
        `certificate ${i + 1} of the chain did not issue certificate ${i}; put the server's certificate first, then each issuer in order`,
      );
    }
  }

  const httpsPort = t.port("httpsPort", 443);
  const url = t.string("url", `https://${publicHost}${httpsPort === 443 ? "" : `:${httpsPort}`}`);
  if (!isOrigin(url) || !url.startsWith("https://")) {
    throw new ConfigError(
      `${t.key}.url`,
      `${quote(url)} is not accepted; use the https:// origin clients reach the balancer at, such as https://www.example.org or https://127.0.0.1:8443`,
    );
  }
  const minVersion = t.oneOf<TlsVersion>("minVersion", ["TLSv1.2", "TLSv1.3"], "TLSv1.2");
  const ciphers = t.string("ciphers", INTERMEDIATE_CIPHERS.join(":"));
  for (const c of ciphers.split(":")) {
    if (!INTERMEDIATE_CIPHERS.includes(c)) {
      throw new ConfigError(
        `${t.key}.ciphers`,
        `${quote(c)} is not accepted; use some of Mozilla's intermediate suites, ":"-separated: ${INTERMEDIATE_CIPHERS.join(":")}`,
      );
    }
  }
  return {
    certificate,
    notAfter: to.toISOString(),
    httpsPort,
    url: url.replace(/\/$/, ""),
    redirect: t.boolean("redirect", true),
    hstsMaxAge: t.integer("hstsMaxAge", { min: 0, max: 63072000 }, 0),
    minVersion,
    ciphers,
  };
}

/** The secret key checked against the certificate; the message never shows the key. */
export function checkTlsPrivateKey(project: string, tls: TlsModel, pem: string): void {
  const key = `${project}:tlsPrivateKey`;
  let k: KeyObject;
  try {
    k = createPrivateKey(pem);
  } catch {
    throw new ConfigError(
      key,
      "the secret is not a readable PEM private key (its value is not shown); set the key of balancer.tls.certificate, unencrypted PEM",
    );
  }
  const leaf = parseChain(`${project}:balancer.tls.certificate`, tls.certificate)[0];
  if (!leaf.checkPrivateKey(k)) {
    throw new ConfigError(
      key,
      `the secret does not match balancer.tls.certificate (its value is not shown; the certificate is for ${leaf.subjectAltName ?? leaf.subject}); set the key the certificate was issued for`,
    );
  }
}

/** The HTTPS port among the balancer's other listeners. */
export function checkTlsListeners(key: string, b: BalancerModel): void {
  if (!b.tls) return;
  const proxyNode = b.engine === "proxy-node";
  checkDistinctPorts([
    { key: `${key}.httpPort`, what: proxyNode ? "proxy-node" : "Apache", port: b.httpPort },
    { key: `${key}.managerPort`, what: "proxy-node's manager", port: b.managerPort },
    ...(proxyNode ? [] : [{ key: `${key}.managerPort`, what: "proxy-node's agent listener (managerPort + 1)", port: b.managerPort + 1 }]),
    { key: `${key}.tls.httpsPort`, what: `${proxyNode ? "proxy-node" : "Apache"}'s HTTPS`, port: b.tls.httpsPort },
  ]);
}
