import { createHash } from "node:crypto";
import { ClusterModel, HostModel } from "../model/types";
import { keepalived, KeepalivedPart, peerOf } from "./keepalived";
import { baseView, clusterAddress, file, routeKey, setting, sh, step, sysvService, template } from "./common";
import { proxyNodeConfigFile } from "./proxy-node-config";
import { apacheBalancerVhosts, tlsFiles } from "./tls";
import { HostPayload, PayloadFile, PayloadSecrets, ServiceSpec } from "./types";

/**
 * proxy-node as shipped: the package's built bin, one self-contained script
 * (proxy-node/dist/proxy-node.js, read by readProxyNodeArtifact).
 */
export type ProxyNodeArtifact = string;

/** Where the balancer keeps proxy-node's bin: one file, replaced whole when proxy-node changes. */
export const PROXY_NODE_BIN = "/opt/proxy-node/bin/proxy-node";
export const PROXY_NODE_CONFIG = "/etc/proxy-node/config.json";
/** The keys of what runs on disk (proxyNodeCodeKey): new ones mean a handover or a restart, not a SIGHUP. */
export const PROXY_NODE_CODE_KEY = "/etc/proxy-node/code-key";
/** Written by the process that serves, also by one that took over from another (proxy-node's handover). */
export const PROXY_NODE_PIDFILE = "/run/proxy-node.pid";

/**
 * How long a stop waits before SIGKILL: proxy-node's own drain (its default
 * timeouts.shutdownMs, 30 s) plus time to close, so the kill never races the drain.
 */
const PROXY_NODE_STOP_SECONDS = 35;

/**
 * The one way the balancer starts proxy-node: the systemd unit, the container
 * supervisor and its config check all run the package's bin with this line.
 * node's flags are the bin's own (its shebang, proxy-node/scripts/build.js).
 */
export function proxyNodeCommand(): string {
  return sh`${PROXY_NODE_BIN} --config ${PROXY_NODE_CONFIG} --pidfile ${PROXY_NODE_PIDFILE}`;
}

/** Binds the client ports with SO_REUSEPORT and runs proxy-node on them (templates/balancer/proxy-node/proxy-node-listen.pl.hbs). */
export const PROXY_NODE_LISTEN = "/usr/local/sbin/proxy-node-listen";

/**
 * The ports the clients reach, as proxy-node-listen's arguments: the ports
 * Apache and proxy-node serving clients hold alike, so either can bind beside
 * the other while the engine switches.
 */
function clientPortArgs(model: ClusterModel): string {
  const tls = model.balancer.tls;
  return `client=${model.balancer.httpPort}${tls ? ` https=${tls.httpsPort}` : ""}`;
}

/**
 * proxy-node serving clients starts on ports proxy-node-listen bound; as
 * Apache's agent it has no client port and binds its own.
 */
export function proxyNodeRunCommand(model: ClusterModel): string {
  return model.balancer.engine === "apache" ? proxyNodeCommand() : `${PROXY_NODE_LISTEN} ${clientPortArgs(model)} -- ${proxyNodeCommand()}`;
}

/**
 * The engine switch hands the client port from the engine that stops to the one
 * that starts through SO_REUSEPORT: a connection waiting in the accept queue of
 * the one that closes its listener is moved to the other's (Linux 5.14+)
 * instead of being reset.
 */
const MIGRATE_SYSCTL = "net.ipv4.tcp_migrate_req";

/**
 * What a running proxy-node takes only at its start, as two keys on one line,
 * "<start> <code>". The start key: its unit and the settings its reload keeps
 * and a handover cannot change (mode, listener addresses; ProxyNode.reload, the
 * listeners handed over). The code key: the start key, its code and its
 * workers, which a new process started by a handover takes. proxy-node-service
 * sends SIGHUP when both are the running ones, hands over (SIGUSR2) when only
 * the code key is new, and restarts when the start key is.
 */
export function proxyNodeCodeKey(artifact: ProxyNodeArtifact, unit: string, configJson: string): string {
  // The layout is built from placeholder secrets: the parts read here hold none.
  const c = JSON.parse(configJson) as {
    mode?: unknown;
    listen?: unknown;
    manager?: { host?: unknown; port?: unknown };
    workers?: unknown;
    tls?: { host?: unknown; port?: unknown };
  };
  // The HTTPS listener too (on or off, its address); its certificate is read again on SIGHUP.
  const listeners = JSON.stringify([c.mode, c.listen, c.manager?.host, c.manager?.port, c.tls ? [c.tls.host ?? null, c.tls.port] : null]);
  const start = hash([unit, listeners]);
  return `${start} ${hash([start, artifact, JSON.stringify(c.workers ?? null)])}`;
}

function hash(parts: string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 32);
}

/** How long a web server added to the stack has to pass the balancer's health check before its reload is refused. */
export const ADMIT_SECONDS = 60;
/**
 * A draining web server with no request for this long is done, before
 * rollout.drainSeconds: for a rolling update's drain and a removed one's retire alike.
 */
export const IDLE_SECONDS = 3;

/**
 * What runs before the balancer takes a config that adds or removes web servers
 * (proxy-node/src/member-changes.ts): `admit` health-checks the added ones from
 * here and fails the change naming one that does not pass; `retire` drains the
 * removed ones in the running balancer until idle or rollout.drainSeconds.
 */
export function memberChangeCommands(model: ClusterModel): { admit: string; retire: string } {
  const bin = (sub: string): string => sh`${PROXY_NODE_BIN} ${sub} --config ${PROXY_NODE_CONFIG}`;
  return {
    admit: `${bin("admit")} --timeout ${ADMIT_SECONDS}`,
    retire: `${bin("retire")} --timeout ${model.rollout.drainSeconds} --idle ${IDLE_SECONDS}`,
  };
}

/** Apache modules mod_proxy_balancer needs on Debian, beyond what is enabled by default. */
export function apacheBalancerModules(model: ClusterModel): string[] {
  const tls = model.balancer.tls ? ["ssl"] : [];
  return ["proxy", "proxy_http", "proxy_balancer", "slotmem_shm", `lbmethod_${model.balancer.lbmethod}`, "status", "rewrite", "headers", ...tls];
}

export function balancerPayload(model: ClusterModel, host: HostModel, secrets: PayloadSecrets, artifact: ProxyNodeArtifact): HostPayload {
  const b = model.balancer;
  const base = baseView(model, host);
  const members = model.web.map((w) => ({
    url: setting(model, clusterAddress(model, w.host).origin.slice(model.project.length + 1), w.memberUrl),
    route: setting(model, routeKey(model, w), w.route),
    lbfactor: w.lbfactor,
  }));
  const apache = b.engine === "apache";

  // proxy-node's own config type, checked by proxy-node's validation as it is rendered.
  const proxyNodeConfig = proxyNodeConfigFile(model, host, secrets, PROXY_NODE_CONFIG);
  const mode = apache ? "agent" : "serve";
  const unit = template("/etc/systemd/system/proxy-node.service", "balancer/proxy-node/proxy-node.service.hbs", {
    ...base,
    mode,
    afterApache: apache,
    command: proxyNodeRunCommand(model),
    stopSeconds: PROXY_NODE_STOP_SECONDS,
    codeKeyFile: PROXY_NODE_CODE_KEY,
  });
  const control = template(
    "/usr/local/sbin/proxy-node-service",
    "balancer/proxy-node/proxy-node-service.sh.hbs",
    {
      ...base,
      command: proxyNodeCommand(),
      run: proxyNodeRunCommand(model),
      listen: `${PROXY_NODE_LISTEN} ${clientPortArgs(model)}`,
      // Engine apache: Apache's reload runs them (apacheService); the agent's config follows Apache's.
      ...(apache ? { admit: ":", retire: ":" } : memberChangeCommands(model)),
      stopSeconds: PROXY_NODE_STOP_SECONDS,
      codeKeyFile: PROXY_NODE_CODE_KEY,
      managerPort: b.managerPort,
      mode,
    },
    { mode: "0755" },
  );
  if (!artifact) throw new Error("proxy-node is not built: its bin (proxy-node/dist/proxy-node.js) is empty or missing (run `npm run build`)");
  const code = file(PROXY_NODE_BIN, artifact, { mode: "0755" });
  const codeKey = file(PROXY_NODE_CODE_KEY, `${proxyNodeCodeKey(artifact, unit.content, proxyNodeConfig.content)}\n`);
  const listen = template(PROXY_NODE_LISTEN, "balancer/proxy-node/proxy-node-listen.pl.hbs", base, { mode: "0755" });
  const proxyNodeFiles = [proxyNodeConfig, unit, control, code, codeKey, listen];
  const migrate = file("/etc/sysctl.d/60-drupal-cluster-balancer.conf", `# Managed by drupal-cluster: see proxy-node-listen.\n${MIGRATE_SYSCTL} = 1\n`);
  // Where /proc/sys is read-only (a container) the switch still works: a
  // connection caught in the queue at that instant is reset, which is said here.
  const migrateStep = step(
    "tcp-migrate-req",
    // /proc, not sysctl(8): procps is not on a minimal Debian; systemd-sysctl reads the file at boot.
    `f=/proc/sys/net/ipv4/tcp_migrate_req; [ "$(cat $f 2>/dev/null)" = 1 ] || { echo 1 >$f; } 2>/dev/null || echo "drupal-cluster: cannot set ${MIGRATE_SYSCTL}=1 on this host; an engine switch may reset a connection that waits to be accepted at the instant the old engine closes its port" >&2`,
    [migrate],
  );
  // HTTPS: the chain and the key, read by proxy-node (either engine: its manager
  // answers HTTPS too) and by Apache. Not part of the code key: a new certificate
  // is a SIGHUP, which swaps it without dropping a connection.
  const certificate = tlsFiles(model, secrets);
  const proxyNode: ServiceSpec = {
    name: "proxy-node",
    start: "proxy-node-service start",
    // SIGHUP for a new config (no request fails); a restart only when the code,
    // the unit, a listener or the workers changed (see proxyNodeCodeKey).
    reload: "proxy-node-service apply",
    stop: "proxy-node-service stop || true",
    status: "proxy-node-service status",
    watch: [...proxyNodeFiles, ...certificate].map((f) => f.path),
  };

  const pair = b.redundancy ? keepalived(model, host, b.redundancy) : undefined;
  if (!apache) {
    return withPair(
      {
        host,
        packages: ["nodejs", "curl", "ca-certificates"],
        prepare: [],
        files: [...proxyNodeFiles, migrate, ...certificate],
        configure: [migrateStep],
        services: [proxyNode],
        afterStart: [],
      },
      pair,
    );
  }

  const view = {
    ...base,
    serverName: setting(model, "serverName", model.serverName),
    httpPort: b.httpPort,
    logLevel: setting(model, "balancer.logLevel", b.logLevel),
    name: setting(model, "balancer.name", b.name),
    members,
    retry: b.retry,
    connectTimeout: b.connectTimeout,
    timeout: b.timeout,
    reuseConnections: b.reuseConnections,
    lbmethod: setting(model, "balancer.lbmethod", b.lbmethod),
    stickysession: setting(model, "balancer.stickysession", model.sticky.stickysession),
    // Apache reads the route after its default "." unless told otherwise; without
    // this any other separator would leave the cluster without stickiness.
    stickysessionsep: model.sticky.separator === "." ? "" : model.sticky.separator,
    managerAllow: [
      ...b.managerAllow.map((cidr, i) => setting(model, `balancer.managerAllow[${i}]`, cidr)),
      ...(peerOf(model, host) ? [clusterAddress(model, peerOf(model, host)!)] : []),
    ],
  };
  const apacheFiles: PayloadFile[] = [
    template("/etc/apache2/ports.conf", "balancer/apache2/ports.conf.hbs", { ...view, httpsPort: b.tls?.httpsPort ?? null }),
    template("/etc/apache2/conf-available/drupal-cluster-proxy.conf", "balancer/apache2/proxy.conf.hbs", view),
    file("/etc/apache2/sites-available/drupal-cluster-balancer.conf", apacheBalancerVhosts(model, view)),
    // A new certificate is a graceful reload: in-flight requests finish on the old one.
    ...certificate,
  ];
  return withPair(
    {
      host,
      packages: ["apache2", "nodejs", "curl", "ca-certificates"],
      prepare: [],
      files: [...apacheFiles, ...proxyNodeFiles, migrate],
      configure: [
        migrateStep,
        step(
          "enable-apache-balancer",
          sh`a2enmod -q ${apacheBalancerModules(model)} && a2enconf -q drupal-cluster-proxy && a2dissite -q 000-default && a2ensite -q drupal-cluster-balancer`,
        ),
      ],
      // Module changes need a restart; a graceful one finishes in-flight requests.
      services: [apacheService(model, apacheFiles), proxyNode],
      afterStart: [],
    },
    pair,
  );
}

/**
 * Apache serves the clients: a reload that adds a web server waits for it to
 * pass the health check, one that removes a web server drains it first (its
 * agent's manager writes Apache's drain flag; Apache's counters tell idle).
 * Its start first takes the client port from a proxy-node that still serves it.
 */
function apacheService(model: ClusterModel, files: PayloadFile[]): ServiceSpec {
  const svc = sysvService("apache2", files, "reload");
  const { admit, retire } = memberChangeCommands(model);
  return {
    ...svc,
    // An engine switch from proxy-node: its own change to Apache's agent comes after this start.
    start: `proxy-node-service give-port && { ${svc.start}; }`,
    reload: `${admit} && ${retire} && ${svc.reload}`,
  };
}

/** Adds keepalived last: it takes the address only once the engine it tracks is running. */
function withPair(p: HostPayload, pair: KeepalivedPart | undefined): HostPayload {
  if (!pair) return p;
  return {
    ...p,
    packages: [...p.packages, ...pair.packages.filter((x) => !p.packages.includes(x))],
    files: [...p.files, ...pair.files],
    configure: [...p.configure, ...pair.configure],
    services: [...p.services, pair.service],
  };
}
