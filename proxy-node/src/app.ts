// Wires the pieces for one process: proxy listener (serve mode), manager,
// health checks, Apache agent (agent mode), live reload and graceful stop.
import * as http from "node:http";
import type * as net from "node:net";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { Config } from "./config";
import { Balancer } from "./balancer";
import { Metrics } from "./metrics";
import type { Logger } from "./log";
import { HealthChecker } from "./health";
import { createManagerServer } from "./manager";
import { createHandlers, ProxyContext } from "./proxy/handler";
import { ProxyServer } from "./proxy/server";
import type { ClientLimits } from "./proxy/client";
import { ReverseRewriter } from "./proxy/response";
import { ApacheAgent } from "./agent";
import type { Member } from "./members";
import { adopt, PeerMember, Peers, redundancyView } from "./peers";
import { holdsAddress } from "./address";
import { ApacheWatcher } from "./apache-watch";
import { secureOptions, serverOptions, sniffingListener } from "./tls";
import * as tls from "node:tls";
import type { Inheritance, ListenerName } from "./handover";
import { VERSION } from "./version";

const VIA_HOST = hostname();
/** What the sticky cookie adds over HTTPS: never sent in the clear, nor on cross-site posts. */
const SECURE_COOKIE = "; Secure; SameSite=Lax";

export class ProxyNode {
  config: Config;
  balancer: Balancer;
  readonly metrics = new Metrics();
  ctx: ProxyContext;
  /** The HTTPS listener's context: the same proxy, told the client used HTTPS. */
  tlsCtx: ProxyContext;
  server: ProxyServer | null = null;
  tlsServer: ProxyServer | null = null;
  manager: http.Server | null = null;
  /** With TLS the manager's port is bound by this listener, which passes HTTP and HTTPS to `manager`. */
  private managerFront: net.Server | null = null;
  private managerTls: tls.Server | null = null;
  health: HealthChecker | null = null;
  agent: ApacheAgent | null = null;
  /** Agent mode: writes manager changes to Apache, and with peers reads Apache's page for operators' changes. */
  watcher: ApacheWatcher | null = null;
  readonly peers: Peers;
  private stopping = false;
  /** Hooks for cluster mode (cluster.ts): the primary pushes changes to workers and sums their counters. */
  onMemberChange: (m: Member) => void = () => undefined;
  onHealthChange: (m: Member) => void = () => undefined;
  beforeRead: () => Promise<void> = () => Promise.resolve();
  /** Listeners lent by the process this one replaces (handover.ts), and the members' state it had. */
  inherited: Inheritance | null = null;
  /** Listeners the program that started this one bound for it (prebound.ts). */
  prebound: Partial<Record<ListenerName, number>> = {};
  /**
   * A cluster worker: its client listeners never bind, the primary accepts and
   * hands it connections (cluster.ts), so the primary alone holds the sockets to lend.
   */
  acceptsFromPrimary = false;

  constructor(
    config: Config,
    readonly logger: Logger,
  ) {
    this.config = config;
    this.balancer = this.logged(new Balancer(config.balancer));
    this.ctx = this.buildContext();
    this.tlsCtx = this.buildContext(true);
    this.peers = new Peers(
      () => this.redundancy(),
      () => this.config.manager?.token ?? "",
      logger,
    );
    this.metrics.holdsVirtualAddress = () => {
      const r = this.redundancy();
      return r ? holdsAddress(r.virtualAddress) : null;
    };
  }

  /** The peers, when this process runs the manager (cluster workers do not, and never talk to peers). */
  private redundancy(): Config["redundancy"] {
    return this.config.manager ? this.config.redundancy : null;
  }

  private buildContext(secure = false): ProxyContext {
    const c = this.config;
    const t = c.tls;
    const sc = c.balancer.setCookie;
    const via = c.via ? `1.1 ${VIA_HOST}:${c.listen.port} (proxy-node)` : null;
    const ctx: ProxyContext = {
      balancer: this.balancer,
      metrics: this.metrics,
      logger: this.logger,
      logRequests: c.log.requests,
      withholdPaths: c.log.withholdPaths,
      outgoing: { via, preserveHost: c.balancer.preserveHost, trustForwardedFrom: c.trustForwardedFrom, proto: secure ? "https" : "http" },
      rewriter: new ReverseRewriter(
        secure && t ? t.publicUrl : c.publicUrl,
        this.balancer.members.map((m) => m.authority),
      ),
      via,
      setCookie: sc
        ? {
            name: sc.name,
            valuePrefix: sc.valuePrefix,
            attributes: `; Path=${sc.path}${sc.domain ? `; Domain=${sc.domain}` : ""}; HttpOnly${secure ? SECURE_COOKIE : ""}`,
          }
        : null,
      timeouts: { connectMs: c.timeouts.connectMs, headersMs: c.timeouts.headersMs, idleMs: c.timeouts.idleMs },
      redirect: !secure && t && t.redirect ? { origin: t.publicUrl, exempt: t.redirectExempt } : null,
      hsts: secure && t && t.hstsMaxAge > 0 ? `max-age=${t.hstsMaxAge}` : null,
    };
    for (const m of this.balancer.members) {
      m.pool.connectMs = c.timeouts.connectMs;
      m.pool.queueMs = c.timeouts.queueMs;
      m.pool.queueCounters = this.metrics;
      m.pool.idleMs = c.timeouts.memberKeepAliveMs;
    }
    // The member tables hold both cookie lines; the plain context is the one they are built from.
    if (!secure) this.refreshMemberTables(ctx);
    return ctx;
  }

  /** Rebuilds derived member tables after a live change. */
  refresh(): void {
    this.refreshMemberTables();
  }

  /** Precomputes per-member strings after a route or cookie change. */
  private refreshMemberTables(ctx: ProxyContext = this.ctx): void {
    this.balancer.reindex();
    const sc = ctx.setCookie;
    for (const m of this.balancer.members) {
      m.cookieLine = sc ? `${sc.name}=${sc.valuePrefix}${m.route}${sc.attributes}` : "";
      m.secureCookieLine = sc ? `${m.cookieLine}${SECURE_COOKIE}` : "";
    }
  }

  async start(): Promise<void> {
    const c = this.config;
    // Before any client is served: a balancer that was down while an operator
    // drained a member comes back with it drained, not with its config's status.
    // The process this one replaces knows the latest statuses (an operator's drain); else the peers do.
    const adopted = this.adoptInherited() || (await this.adoptFromPeers());
    if (c.mode === "serve") {
      const server = new ProxyServer(
        clientLimits(c),
        createHandlers(() => this.ctx),
      );
      if (!this.acceptsFromPrimary) await listen(server.server, c.listen.port, c.listen.host, this.lent("client"));
      this.server = server;
      if (c.tls) {
        const t = new ProxyServer(
          clientLimits(c),
          createHandlers(() => this.tlsCtx),
          serverOptions(c.tls, c.timeouts.clientHeadersMs),
        );
        if (!this.acceptsFromPrimary) await listen(t.server, c.tls.port, c.tls.host, this.lent("https"));
        this.tlsServer = t;
      }
    }
    if (c.manager) {
      const mgr = createManagerServer({
        balancer: () => this.balancer,
        metrics: this.metrics,
        logger: this.logger,
        allow: () => this.config.manager?.allow ?? [],
        token: () => this.config.manager?.token ?? "",
        changed: (m) => {
          this.refreshMemberTables();
          this.onMemberChange(m);
        },
        beforeRead: () => this.beforeRead(),
        separator: () => this.config.balancer.stickysessionsep,
        afterChange: (m, route, change, fromPeer) => this.carry(m, route, change, fromPeer),
        redundancy: () => {
          const r = this.redundancy();
          return r ? redundancyView(r) : null;
        },
      });
      if (c.tls) {
        this.managerTls = tls.createServer(serverOptions(c.tls, 10_000));
        this.managerFront = sniffingListener(mgr, this.managerTls);
        await listen(this.managerFront, c.manager.port, c.manager.host, this.lent("manager"));
      } else await listen(mgr, c.manager.port, c.manager.host, this.lent("manager"));
      this.manager = mgr;
    }
    this.agent = apacheAgent(c, this.logger);
    this.startWatcher(adopted);
    this.startHealth();
    this.logger.event("info", "proxy-node started", {
      version: VERSION,
      pid: process.pid,
      handover: this.inherited !== null,
      mode: c.mode,
      listen: this.server?.server.listening ? addr(this.server.server) : null,
      https: this.tlsServer?.server.listening ? addr(this.tlsServer.server) : null,
      manager: this.managerFront ? addr(this.managerFront) : this.manager ? addr(this.manager) : null,
      members: this.balancer.members.map((m) => `${m.route}=${m.url}`),
    });
  }

  private startHealth(): void {
    this.health?.stop();
    this.health = null;
    const hc = this.config.balancer.healthCheck;
    if (!hc) return;
    this.health = new HealthChecker(
      () => this.balancer.members,
      hc,
      (m, healthy, reason) => {
        this.logger.event(healthy ? "info" : "warn", healthy ? "member healthy" : "member failed health check", { route: m.route, url: m.url, reason });
        if (this.agent) void this.agent.setHealth(m.url, healthy);
        this.onHealthChange(m);
      },
    );
    this.health.start();
  }

  private lastForcedLog = 0;

  /** With every web server down this fires every few requests: one line per 10 s says it. */
  private logged(b: Balancer): Balancer {
    b.onForcedRecovery = () => {
      const now = Date.now();
      if (now - this.lastForcedLog < 10_000) return;
      this.lastForcedLog = now;
      this.logger.event("warn", "every member in error: trying them all again (forcerecovery)");
    };
    return b;
  }

  /** The descriptor the replaced process lent for this listener, or the one bound for it before the start. */
  lent(name: ListenerName): number | undefined {
    return this.inherited?.listeners[name] ?? this.prebound[name];
  }

  /** The listeners this process can lend to a successor, by name. */
  listeners(): Partial<Record<ListenerName, net.Server>> {
    const out: Partial<Record<ListenerName, net.Server>> = {};
    if (this.server && !this.acceptsFromPrimary) out.client = this.server.server;
    if (this.tlsServer && !this.acceptsFromPrimary) out.https = this.tlsServer.server;
    const mgr = this.managerFront ?? this.manager;
    if (mgr) out.manager = mgr;
    return out;
  }

  /** The members' administrative state, for a successor. */
  memberState(): PeerMember[] {
    return this.balancer.members.map((m) => ({ route: m.route, status: m.status, lbfactor: m.lbfactor }));
  }

  /** Takes the replaced process's member statuses (once); true if this process replaced one. */
  adoptInherited(): boolean {
    if (!this.inherited) return false;
    const members = this.inherited.members;
    this.inherited = { ...this.inherited, members: [] };
    for (const m of adopt(this.balancer.members, members)) {
      this.logger.event("info", "member status taken from the replaced process", { route: m.route, status: m.status, lbfactor: m.lbfactor });
      this.onMemberChange(m);
    }
    this.refreshMemberTables();
    return true;
  }

  /** Takes the first answering peer's member statuses; true if one answered. */
  private async adoptFromPeers(): Promise<boolean> {
    if (!this.redundancy()) return false;
    const got = await this.peers.fetchMembers();
    if (!got) {
      this.logger.event("warn", "no peer answered; starting with the config's member statuses");
      return false;
    }
    const changed = adopt(this.balancer.members, got.members);
    for (const m of changed) {
      this.logger.event("info", "member status taken from peer", { peer: got.peer, route: m.route, status: m.status, lbfactor: m.lbfactor });
      this.onMemberChange(m);
    }
    this.refreshMemberTables();
    return true;
  }

  private startWatcher(authoritative: boolean): void {
    this.watcher?.stop();
    this.watcher = null;
    if (!this.agent) return;
    this.watcher = new ApacheWatcher(
      this.agent,
      () => this.balancer.members,
      (m, carry) => {
        this.refreshMemberTables();
        this.onMemberChange(m);
        if (carry) void this.peers.forward(m.route, { status: m.status });
      },
      this.logger,
    );
    if (authoritative) this.watcher.markAuthoritative();
    // With or without a peer: a reload of Apache (any change of its config)
    // resets the balancer-manager's flags to the config's, and the watcher
    // sees the new Apache and sets proxy-node's statuses there again, so an
    // operator's drain outlives it. A change made in Apache's page goes to the peers.
    this.watcher.start();
  }

  /**
   * After a manager change was applied here: to Apache in agent mode, then to
   * the peers unless a peer sent it (a change is carried one hop, so it never
   * loops). The answer says where it went, so an operator sees a miss.
   */
  private async carry(m: Member, route: string, change: Readonly<Record<string, unknown>>, fromPeer: string | null): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    if (this.watcher) {
      out.apache = await this.watcher.apply(m, {
        status: "status" in change ? m.status : undefined,
        lbfactor: "lbfactor" in change ? m.lbfactor : undefined,
        route: "route" in change ? m.route : undefined,
      });
    }
    if (this.redundancy()) out.peers = fromPeer === null ? await this.peers.forward(route, change) : [];
    return out;
  }

  get port(): number {
    return this.server ? (this.server.server.address() as AddressInfo).port : 0;
  }

  get tlsPort(): number {
    return this.tlsServer ? (this.tlsServer.server.address() as AddressInfo).port : 0;
  }

  get managerPort(): number {
    const bound = this.managerFront ?? this.manager;
    return bound ? (bound.address() as AddressInfo).port : 0;
  }

  /**
   * Applies a new, already validated config. Listener addresses are fixed for
   * the life of the process; everything else changes in place, and members
   * keep their pools and counters when their URL stays.
   */
  reload(next: Config): void {
    const prev = this.config;
    if (
      next.mode !== prev.mode ||
      next.listen.port !== prev.listen.port ||
      next.listen.host !== prev.listen.host ||
      (next.manager?.port ?? null) !== (prev.manager?.port ?? null) ||
      (next.tls === null) !== (prev.tls === null) ||
      (next.tls && prev.tls && (next.tls.port !== prev.tls.port || next.tls.host !== prev.tls.host))
    ) {
      this.logger.event("warn", "reload: mode, listen/manager addresses and turning TLS on or off need a restart; keeping the old ones");
      next = {
        ...next,
        mode: prev.mode,
        listen: prev.listen,
        manager: next.manager && prev.manager ? { ...next.manager, host: prev.manager.host, port: prev.manager.port } : prev.manager,
        tls: next.tls && prev.tls ? { ...next.tls, host: prev.tls.host, port: prev.tls.port } : prev.tls,
      };
    }
    // The certificate first: a file that cannot serve refuses the whole reload, the old config keeps serving.
    const secure = next.tls && (this.tlsServer || this.managerTls) ? secureOptions(next.tls) : null;
    if (secure) {
      this.tlsServer?.setSecureContext(secure);
      this.managerTls?.setSecureContext(secure);
    }
    this.config = next;
    this.balancer = this.logged(new Balancer(next.balancer, this.balancer));
    this.ctx = this.buildContext();
    this.tlsCtx = this.buildContext(true);
    this.server?.setLimits(clientLimits(next));
    this.tlsServer?.setLimits(clientLimits(next));
    this.agent = apacheAgent(next, this.logger);
    // The watcher has been reading Apache's page: once it has, proxy-node's
    // statuses include every change made there, and the operator's statuses a
    // reload keeps (balancer.ts, applyConfig) are set in an Apache that a
    // reload of its own reset. Before the first read, Apache's are taken.
    this.startWatcher(this.watcher?.isAuthoritative() ?? false);
    this.startHealth();
    this.metrics.reloads++;
    this.logger.event("info", "config reloaded", { members: this.balancer.members.map((m) => `${m.route}=${m.url}`) });
  }

  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes everything. */
  async stop(graceMs = this.config.timeouts.shutdownMs): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.health?.stop();
    this.watcher?.stop();
    const closing: Promise<void>[] = [];
    // In-flight requests finish with "Connection: close"; idle connections close now.
    if (this.server) closing.push(this.server.close());
    if (this.tlsServer) closing.push(this.tlsServer.close());
    const front = this.managerFront;
    if (front) closing.push(new Promise((resolve) => front.close(() => resolve())));
    const mgr = this.manager;
    if (mgr) {
      closing.push(new Promise((resolve) => mgr.close(() => resolve())));
      mgr.closeIdleConnections();
    }
    // Connections finishing a response become idle later; close them as they do.
    const sweep = setInterval(() => {
      this.server?.closeIdle();
      this.tlsServer?.closeIdle();
      this.manager?.closeIdleConnections();
    }, 50);
    const force = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(closing), force]);
    clearInterval(sweep);
    this.server?.closeAll();
    this.tlsServer?.closeAll();
    this.manager?.closeAllConnections();
    this.balancer.destroy();
    this.logger.event("info", "proxy-node stopped");
  }
}

/**
 * Only in agent mode does proxy-node stand beside Apache. In serve mode the
 * apache block is read but unused: an agent there would post health changes
 * to a balancer-manager that is not Apache's (or to proxy-node's own listener).
 */
function apacheAgent(c: Config, logger: Logger): ApacheAgent | null {
  return c.mode === "agent" && c.apache ? new ApacheAgent(c.apache, logger) : null;
}

/**
 * Binds `server` to host:port, or serves on the listening socket `fd` a
 * replaced process lent, which must be bound where the config says: a new
 * address cannot be handed over (the old process then keeps serving).
 */
export function listen(server: net.Server, port: number, host: string, fd?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const bound = (): void => {
      server.off("error", reject);
      const a = server.address() as AddressInfo;
      if (fd !== undefined && port !== 0 && (a.port !== port || !sameHost(a.address, host))) {
        server.close();
        reject(new Error(`the listener handed over is ${a.address}:${a.port}, the config says ${host}:${port}: a new address needs a restart`));
      } else resolve();
    };
    if (fd !== undefined) server.listen({ fd }, bound);
    else server.listen(port, host, bound);
  });
}

/** "All addresses" either way: a [::] socket that also takes IPv4 (as Apache's `Listen <port>` binds) serves what 0.0.0.0 would. */
const ANY = ["0.0.0.0", "::"];

function sameHost(bound: string, configured: string): boolean {
  return (
    bound === configured ||
    (ANY.includes(bound) && ANY.includes(configured)) ||
    bound === `::ffff:${configured}` ||
    (configured === "localhost" && (bound === "127.0.0.1" || bound === "::1"))
  );
}

function addr(s: net.Server): string {
  const a = s.address() as AddressInfo;
  return `${a.address}:${a.port}`;
}

function clientLimits(c: Config): ClientLimits {
  return {
    maxHeaderSize: c.limits.maxHeaderSize,
    maxHeadersCount: c.limits.maxHeadersCount,
    headersMs: c.timeouts.clientHeadersMs,
    requestMs: c.timeouts.clientRequestMs,
    keepAliveMs: c.timeouts.keepAliveMs,
  };
}
