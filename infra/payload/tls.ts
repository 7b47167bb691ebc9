/**
 * HTTPS at the balancer, as payload: the certificate chain and the key on the
 * balancer, Apache's TLS vhost beside its plain one, proxy-node's `tls` block.
 */
import type { TlsFile } from "../../proxy-node/src/config";
import { ClusterModel, TlsModel } from "../model/types";
import { file, setting } from "./common";
import { render } from "./render";
import { PayloadFile, PayloadSecrets } from "./types";

export const TLS_DIR = "/etc/drupal-cluster/tls";
export const TLS_CERT = `${TLS_DIR}/balancer.crt`;
export const TLS_KEY = `${TLS_DIR}/balancer.key`;

/** The balancer's own requests (cron, the agent driving Apache's balancer-manager) stay on plain HTTP. */
export const LOOPBACK = ["127.0.0.0/8", "::1/128"];

/** The chain (public) and the key (a secret file only root reads); none without HTTPS. */
export function tlsFiles(model: ClusterModel, secrets: PayloadSecrets): PayloadFile[] {
  const t = model.balancer.tls;
  if (!t) return [];
  return [file(TLS_CERT, ensureNewline(t.certificate)), file(TLS_KEY, ensureNewline(secrets.tlsPrivateKey), { mode: "0600", secret: true })];
}

function ensureNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}

/** proxy-node's `tls` block: the serving listener with engine proxy-node, the manager's HTTPS with either engine. */
export function proxyNodeTls(t: TlsModel): TlsFile {
  return {
    port: t.httpsPort,
    cert: TLS_CERT,
    key: TLS_KEY,
    minVersion: t.minVersion,
    ciphers: t.ciphers,
    publicUrl: t.url,
    redirect: t.redirect,
    redirectExempt: LOOPBACK,
    hstsMaxAge: t.hstsMaxAge,
  };
}

/** The stack settings each key of proxy-node's `tls` block comes from. */
export function proxyNodeTlsOrigins(): Array<[string, string]> {
  return [
    ["tls.port", "balancer.tls.httpsPort"],
    ["tls.minVersion", "balancer.tls.minVersion"],
    ["tls.ciphers", "balancer.tls.ciphers"],
    ["tls.publicUrl", "balancer.tls.url"],
    ["tls.redirect", "balancer.tls.redirect"],
    ["tls.hstsMaxAge", "balancer.tls.hstsMaxAge"],
  ];
}

/**
 * Apache's balancer vhost file: the plain vhost, and with HTTPS the same vhost
 * again on the HTTPS port with mod_ssl. One template, so the two cannot differ
 * in anything but TLS (routes, cookie, refusals, the manager's allowlist).
 */
export function apacheBalancerVhosts(model: ClusterModel, view: Record<string, unknown>): string {
  const b = model.balancer;
  const t = b.tls;
  const plain = render("balancer/apache2/balancer-vhost.conf.hbs", {
    ...view,
    port: b.httpPort,
    tls: null,
    forwardedProto: t ? "http" : null,
    redirect: t && t.redirect ? setting(model, "balancer.tls.url", t.url) : null,
  });
  if (!t) return plain;
  const secure = render("balancer/apache2/balancer-vhost.conf.hbs", {
    ...view,
    port: t.httpsPort,
    tls: {
      certFile: TLS_CERT,
      keyFile: TLS_KEY,
      protocols: t.minVersion === "TLSv1.3" ? ["+TLSv1.3"] : ["+TLSv1.2", "+TLSv1.3"],
      ciphers: setting(model, "balancer.tls.ciphers", t.ciphers),
      hsts: t.hstsMaxAge > 0 ? `max-age=${t.hstsMaxAge}` : null,
    },
    forwardedProto: "https",
    redirect: null,
  });
  return `${plain}\n${secure}`;
}
