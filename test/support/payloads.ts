import { HostPayload, PayloadFile } from "../../infra/payload/types";

export const BALANCER_VHOST = "/etc/apache2/sites-available/drupal-cluster-balancer.conf";
export const PROXY_CONF = "/etc/apache2/conf-available/drupal-cluster-proxy.conf";
export const PORTS_CONF = "/etc/apache2/ports.conf";
export const WEB_VHOST = "/etc/apache2/sites-available/drupal-cluster-web.conf";
export const PROXY_NODE_CONFIG = "/etc/proxy-node/config.json";
export const MARIADB_CNF = "/etc/mysql/mariadb.conf.d/60-drupal-cluster.cnf";

export function host(payloads: HostPayload[], name: string): HostPayload {
  const h = payloads.find((p) => p.host.name === name);
  if (!h) throw new Error(`no payload for host ${name}; have ${payloads.map((p) => p.host.name).join(", ")}`);
  return h;
}

export function fileOf(payload: HostPayload, path: string): PayloadFile {
  const f = payload.files.find((x) => x.path === path);
  if (!f) throw new Error(`host ${payload.host.name} has no file ${path}; has ${payload.files.map((x) => x.path).join(", ")}`);
  return f;
}

/** The lines of a config file without comments and blank lines, trimmed. */
export function directives(content: string): string[] {
  return content
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}
