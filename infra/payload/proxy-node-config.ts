/**
 * proxy-node's config file on the balancer, built as proxy-node's own ConfigFile
 * type (proxy-node/src/config.ts) instead of rendered from a template: a setting
 * proxy-node does not read, or one it reads under another name, fails to compile.
 * The value is then checked with proxy-node's own validateConfig at render time,
 * so what proxy-node would refuse at start fails the render instead, naming the
 * key in the file and, where one is the source, the stack setting.
 */
import { ConfigError as ProxyNodeConfigError, ConfigFile, validateConfig as validateProxyNodeConfig } from "../../proxy-node/src/config";
import { ConfigError } from "../config/errors";
import { ClusterModel, HostModel } from "../model/types";
import { managerAllowFor, peerOf } from "./keepalived";
import { addressKey, file } from "./common";
import { proxyNodeTls, proxyNodeTlsOrigins } from "./tls";
import { PayloadFile, PayloadSecrets } from "./types";

/**
 * The file as delivered: it holds the manager token, so it is a secret file (a
 * Pulumi secret end to end, built from placeholders for the layout, see
 * secret-payloads.ts) that only root reads.
 */
export function proxyNodeConfigFile(model: ClusterModel, host: HostModel, secrets: PayloadSecrets, path: string): PayloadFile {
  return file(path, proxyNodeConfigJson(model, host, proxyNodeConfig(model, host, secrets), path), { mode: "0600", secret: true });
}

/** The config and, per key of the file, the stack setting its value comes from. */
export interface ProxyNodeConfig {
  config: ConfigFile;
  origins: ReadonlyMap<string, string>;
}

/** What the balancer's proxy-node reads: one model, one file, for either engine. */
export function proxyNodeConfig(model: ClusterModel, host: HostModel, secrets: PayloadSecrets): ProxyNodeConfig {
  const b = model.balancer;
  // engine apache: proxy-node is Apache's agent (health checks, balancer-manager);
  // engine proxy-node: proxy-node serves the clients itself.
  const agent = b.engine === "apache";
  const connectMs = b.connectTimeout * 1000;
  const origins = new Map<string, string>([
    ["publicUrl", b.publicUrl !== undefined ? "balancer.url" : "serverName"],
    // In agent mode proxy-node serves no clients, so it keeps off the HTTP port.
    ["listen.port", agent ? "balancer.managerPort" : "balancer.httpPort"],
    ["manager.port", "balancer.managerPort"],
    ["manager.token", "managerToken"],
    ["balancer.name", "balancer.name"],
    ["balancer.lbmethod", "balancer.lbmethod"],
    ["balancer.stickysession", "balancer.stickysession"],
    ["balancer.stickysessionsep", "balancer.stickysessionsep"],
    ["balancer.healthCheck.path", "app"],
    ["balancer.healthCheck.timeoutMs", "balancer.connectTimeout"],
    ["timeouts.connectMs", "balancer.connectTimeout"],
    ["timeouts.headersMs", "balancer.timeout"],
    ["apache.managerUrl", "balancer.httpPort"],
    ["apache.balancer", "balancer.name"],
    ["workers", "balancer.proxyNodeWorkers"],
    ["log.requests", "balancer.logLevel"],
  ]);
  if (b.tls) for (const [k, v] of proxyNodeTlsOrigins()) origins.set(k, v);
  b.managerAllow.forEach((_, i) => origins.set(`manager.allow[${i + 1}]`, `balancer.managerAllow[${i}]`));
  model.web.forEach((w, i) => {
    origins.set(`balancer.members[${i}].url`, addressKey(model, w.host));
    origins.set(`balancer.members[${i}].route`, `web[${i}].route`);
    origins.set(`balancer.members[${i}].lbfactor`, `web[${i}].lbfactor`);
    origins.set(`balancer.members[${i}].retry`, "balancer.retry");
  });

  const config: ConfigFile = {
    mode: agent ? "agent" : "serve",
    listen: { host: "0.0.0.0", port: agent ? b.managerPort + 1 : b.httpPort },
    publicUrl: b.publicUrl ?? `http://${model.serverName}`,
    manager: {
      host: "0.0.0.0",
      port: b.managerPort,
      allow: ["127.0.0.1/32", ...managerAllowFor(model, host)],
      token: secrets.managerToken,
    },
    balancer: {
      name: b.name,
      lbmethod: b.lbmethod,
      stickysession: model.sticky.stickysession,
      stickysessionsep: model.sticky.separator,
      nofailover: false,
      trustCookieOnly: false,
      // The web servers set the sticky cookie themselves (mod_rewrite), never proxy-node.
      setCookie: null,
      members: model.web.map((w) => ({ url: w.memberUrl, route: w.route, lbfactor: w.lbfactor, retry: b.retry, status: "enabled" })),
      healthCheck: {
        path: model.app.kind === "probe" ? "/health.php" : "/user/login",
        intervalMs: 2000,
        expect: 200,
        rise: 2,
        fall: 2,
        // The probe's whole deadline (connect and answer) is the connect deadline.
        timeoutMs: connectMs,
      },
    },
    timeouts: { connectMs, headersMs: b.timeout * 1000, idleMs: 60_000 },
    log: {
      requests: b.logLevel === "debug" || b.logLevel === "info",
      // Drupal's cron URL carries its key (/cron/<key>, infra/payload/cron.ts): never in a log.
      ...(model.app.kind === "drupal" ? { withholdPaths: ["/cron/"] } : {}),
    },
  };
  // A pair: each balancer carries manager changes to the other's manager (on its
  // cluster address, allowed there), and shows whether it holds the address.
  const peer = peerOf(model, host);
  if (b.redundancy && peer) {
    config.redundancy = {
      self: host.name,
      virtualAddress: b.redundancy.virtualAddress,
      peers: [{ name: peer.name, managerUrl: `http://${peer.clusterAddress}:${b.managerPort}` }],
    };
    origins.set("redundancy.virtualAddress", "balancer.redundancy.virtualAddress");
    origins.set("redundancy.self", host === b.host ? "balancer (host name)" : "balancer.redundancy.peer.name");
    origins.set("redundancy.peers[0].name", host === b.host ? "balancer.redundancy.peer.name" : "balancer (host name)");
    origins.set("redundancy.peers[0].managerUrl", host === b.host ? "balancer.redundancy.peer.address" : "balancer.address");
  }
  // HTTPS for the clients (engine proxy-node) and for the manager (either engine).
  if (b.tls) config.tls = proxyNodeTls(b.tls);
  // Only the agent talks to Apache: in serve mode there is no Apache on the balancer.
  if (agent) config.apache = { managerUrl: `http://127.0.0.1:${b.httpPort}/balancer-manager`, balancer: b.name };
  // Only where proxy-node serves clients; left out, proxy-node runs one process.
  // "auto" stays as is: proxy-node resolves it from the balancer's cores.
  else config.workers = b.proxyNodeWorkers;
  return { config, origins };
}

/**
 * The file's content: proxy-node's validation first, then pretty JSON with the keys
 * sorted at every level, so the same config always gives the same bytes (and the
 * same hash, so no restart without a change).
 */
export function proxyNodeConfigJson(model: ClusterModel, host: HostModel, built: ProxyNodeConfig, path: string): string {
  try {
    validateProxyNodeConfig(built.config);
  } catch (e) {
    if (!(e instanceof ProxyNodeConfigError)) throw e;
    const where = `${path} on ${host.name}, key ${e.key}`;
    const setting = built.origins.get(e.key);
    // A setting our validation let through but proxy-node refuses: name the setting, as any refused one.
    if (setting !== undefined) throw new ConfigError(`${model.project}:${setting}`, `proxy-node would refuse it (${where}): ${e.problem}`);
    throw new Error(`proxy-node would refuse the config this program built (${where}): ${e.problem}; nothing was written`, { cause: e });
  }
  return `${JSON.stringify(sortedKeys(built.config), null, 2)}\n`;
}

/** A JSON value with every object's keys in code-point order (lists keep their order). */
function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => [k, sortedKeys(o[k])]),
  );
}
