// Optional multi-process mode (`workers` > 1) with node:cluster. Workers share
// the client port and only proxy. The primary owns everything that must be
// one per balancer: the manager, health checks, config reloads. It pushes
// state changes to the workers and sums their counters when asked.
//
// The primary holds the listening sockets itself and hands each accepted
// connection to the next worker, round robin, as node:cluster's own scheduler
// does; but node keeps that socket out of reach, and a handover (handover.ts)
// must lend it to the successor.
//
// Per worker and not shared: byrequests accumulators (each worker follows
// Apache's weighted sequence on its own share of requests) and passive error
// marks (each worker finds a dead member on its own first failed connect, and
// retries that request elsewhere).
import cluster, { Worker } from "node:cluster";
import * as net from "node:net";
import { listen } from "./app";
import type { ListenerName } from "./handover";
import type { Config, MemberStatus } from "./config";
import type { Logger, JsonLogger } from "./log";
import { ProxyNode } from "./app";
import type { Member } from "./members";
import type { Metrics } from "./metrics";

type MemberStats = { url: string; requests: number; errors: number; bytesIn: number; bytesOut: number; busy: number; unreachable: number };
type MetricStats = Record<"requests" | "inFlight" | "refused" | "retries" | "noMember" | "upstreamErrors" | "upstreamTimeouts" | "websockets", number> & {
  byClass: number[];
  queueRefused: Metrics["queueRefused"];
};

type ToWorker =
  | { t: "config"; config: Config }
  | { t: "member"; url: string; route: string; lbfactor: number; status: MemberStatus }
  | { t: "health"; url: string; hcFail: boolean }
  | { t: "stats"; id: number }
  | { t: "conn"; listener: "client" | "https" }
  | { t: "stop" };

type ToPrimary = { t: "ready" } | { t: "stats"; id: number; members: MemberStats[]; metrics: MetricStats };

/** How long the primary tries to bind a client port another process still holds. */
const BIND_MS = 10_000;

const METRIC_KEYS = ["requests", "inFlight", "refused", "retries", "noMember", "upstreamErrors", "upstreamTimeouts", "websockets"] as const;

/** Config a worker runs: proxying only. */
function workerConfig(c: Config): Config {
  return { ...c, manager: null, balancer: { ...c.balancer, healthCheck: null } };
}

function memberMessage(m: Member): ToWorker {
  return { t: "member", url: m.url, route: m.route, lbfactor: m.lbfactor, status: m.status };
}

export class ClusterPrimary {
  /** Holds the shared state shown by the manager; never proxies. */
  readonly app: ProxyNode;
  private workers: Worker[] = [];
  /** Workers that serve (their "ready" came): a replacement still starting gets no connection. */
  private serving: Worker[] = [];
  private statsSeq = 0;
  private stopping = false;
  /** The client listeners, accepting for the workers. */
  private readonly accepting: Partial<Record<"client" | "https", net.Server>> = {};
  private next = 0;

  constructor(
    private config: Config,
    private logger: Logger,
  ) {
    // mode "agent" is never clustered; the primary's app runs manager and health only.
    this.app = new ProxyNode({ ...config, mode: "agent", apache: null }, logger);
  }

  async start(): Promise<number> {
    const n = this.config.workers;
    const ready: Promise<void>[] = [];
    for (let i = 0; i < n; i++) ready.push(new Promise((resolve) => this.fork(i, resolve)));
    await Promise.all(ready);
    this.app.onMemberChange = (m) => this.broadcast(memberMessage(m));
    this.app.onHealthChange = (m) => this.broadcast({ t: "health", url: m.url, hcFail: m.hcFail });
    this.app.beforeRead = () => this.gather();
    // Before the first client: the statuses of the process this one replaces.
    this.app.adoptInherited();
    const c = this.config;
    await this.accept("client", c.listen.port, c.listen.host);
    if (c.tls) await this.accept("https", c.tls.port, c.tls.host);
    await this.app.start();
    return this.app.managerPort;
  }

  /**
   * Binds (or takes over) one client listener. Its connections wait unread
   * (pauseOnConnect) until the worker they go to reads them. Bound while the
   * port is still held (Apache, stopping as the engine switches) it tries again
   * for BIND_MS, as the workers that bound it themselves did.
   */
  private async accept(name: "client" | "https", port: number, host: string): Promise<void> {
    const fd = this.app.lent(name);
    for (const deadline = Date.now() + BIND_MS; ;) {
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.dispatch(name, socket));
      try {
        await listen(server, port, host, fd);
        this.accepting[name] = server;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || Date.now() >= deadline) throw e;
        this.logger.event("warn", "client port in use; trying again", { listener: name, port });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** The next serving worker, round robin; none (all restarting) closes the connection, as a full backlog would refuse it. */
  private dispatch(listener: "client" | "https", socket: net.Socket): void {
    const live = this.serving;
    if (live.length === 0) {
      socket.destroy();
      return;
    }
    const w = live[this.next++ % live.length];
    w.send({ t: "conn", listener } satisfies ToWorker, socket, (e) => {
      if (e) socket.destroy();
    });
  }

  /** The listeners a successor takes over: the client ones accepting here, and the manager's. */
  listeners(): Partial<Record<ListenerName, net.Server>> {
    return { ...this.accepting, ...this.app.listeners() };
  }

  /**
   * `slot` is the worker's place in the round robin; a replacement takes the
   * same one, and the slot's `ready` with it: a first worker that cannot start
   * must not leave the primary waiting for it forever, with no manager and no
   * health checks.
   */
  private fork(slot: number, ready: () => void = () => undefined): void {
    const w = cluster.fork({ PROXY_NODE_WORKER: "1", PROXY_NODE_WORKER_SLOT: String(slot) });
    this.workers.push(w);
    w.on("exit", (code, signal) => {
      this.workers = this.workers.filter((x) => x !== w);
      this.serving = this.serving.filter((x) => x !== w);
      if (!this.stopping) {
        this.logger.event("error", "worker exited; starting another", { code, signal });
        this.fork(slot, ready);
      }
    });
    w.on("message", (msg: ToPrimary) => {
      if (msg.t !== "ready") return;
      this.serving.push(w);
      ready();
    });
    w.send({ t: "config", config: workerConfig(this.config) } satisfies ToWorker);
  }

  private broadcast(msg: ToWorker): void {
    for (const w of this.workers) if (w.isConnected()) w.send(msg);
  }

  /** Sums the workers' counters into the primary's members and metrics, for the manager to show. */
  private async gather(): Promise<void> {
    const id = ++this.statsSeq;
    const replies = await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<ToPrimary | null>((resolve) => {
            const timer = setTimeout(() => done(null), 1000);
            const onMsg = (msg: ToPrimary): void => {
              if (msg.t === "stats" && msg.id === id) done(msg);
            };
            const done = (v: ToPrimary | null): void => {
              clearTimeout(timer);
              w.off("message", onMsg);
              resolve(v);
            };
            w.on("message", onMsg);
            w.send({ t: "stats", id } satisfies ToWorker);
          }),
      ),
    );
    const byUrl = new Map<string, Member>(this.app.balancer.members.map((m) => [m.url, m]));
    for (const m of byUrl.values()) m.requests = m.errors = m.bytesIn = m.bytesOut = m.busy = m.pool.unreachableFailures = 0;
    const mt = this.app.metrics;
    for (const k of METRIC_KEYS) mt[k] = 0;
    mt.byClass = [0, 0, 0, 0, 0, 0];
    mt.queueRefused = { full: 0, timeout: 0 };
    for (const r of replies) {
      if (!r || r.t !== "stats") continue;
      for (const s of r.members) {
        const m = byUrl.get(s.url);
        if (!m) continue;
        m.requests += s.requests;
        m.errors += s.errors;
        m.bytesIn += s.bytesIn;
        m.bytesOut += s.bytesOut;
        m.busy += s.busy;
        m.pool.unreachableFailures += s.unreachable;
      }
      for (const k of METRIC_KEYS) mt[k] += r.metrics[k];
      r.metrics.byClass.forEach((v, i) => (mt.byClass[i] += v));
      mt.queueRefused.full += r.metrics.queueRefused.full;
      mt.queueRefused.timeout += r.metrics.queueRefused.timeout;
    }
  }

  reload(next: Config): void {
    // The primary's reload reads the certificate first: one that cannot serve throws here, before any worker hears of it.
    this.app.reload({ ...next, mode: "agent", apache: null });
    this.config = next;
    this.broadcast({ t: "config", config: workerConfig(next) });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // No new connection for the workers: theirs finish, a successor (if any) accepts the next.
    for (const s of Object.values(this.accepting)) s.close();
    const exits = this.workers.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once("exit", () => r()))));
    this.broadcast({ t: "stop" });
    // The manager stops accepting now too, not once the workers are done: after
    // a handover an operator's change must reach the process that stays.
    await Promise.all([...exits, this.app.stop()]);
  }
}

/** Runs in a worker process: proxies with the config and state the primary sends. */
export function runWorker(logger: JsonLogger): void {
  let app: ProxyNode | null = null;
  const send = (msg: ToPrimary): void => {
    process.send?.(msg);
  };
  process.on("message", (msg: ToWorker, handle: unknown) => {
    switch (msg.t) {
      case "conn": {
        const to = msg.listener === "https" ? app?.tlsServer : app?.server;
        if (handle instanceof net.Socket) {
          if (to) to.adopt(handle);
          else handle.destroy();
        }
        return;
      }
      case "config":
        logger.requestsOn = msg.config.log.requests;
        if (app === null) {
          app = new ProxyNode(msg.config, logger);
          app.acceptsFromPrimary = true;
          app.balancer.stagger(Number(process.env.PROXY_NODE_WORKER_SLOT ?? 0));
          app.start().then(
            () => send({ t: "ready" }),
            (e: Error) => {
              logger.event("error", "worker cannot start", { error: e.message });
              process.exit(1);
            },
          );
        } else {
          try {
            app.reload(msg.config);
          } catch (e) {
            // The primary read the same files a moment ago; a worker that cannot keeps its old certificate.
            logger.event("error", "worker reload refused; the old config keeps serving", { error: (e as Error).message });
          }
        }
        return;
      case "member": {
        const m = app?.balancer.members.find((x) => x.url === msg.url);
        if (app && m) {
          m.route = msg.route;
          m.lbfactor = msg.lbfactor;
          m.status = msg.status;
          app.refresh();
        }
        return;
      }
      case "health": {
        const m = app?.balancer.members.find((x) => x.url === msg.url);
        if (m) {
          m.hcFail = msg.hcFail;
          if (!msg.hcFail) m.inError = false;
        }
        return;
      }
      case "stats": {
        if (!app) return;
        const mt = app.metrics;
        const metrics = { byClass: [...mt.byClass], queueRefused: { ...mt.queueRefused } } as MetricStats;
        for (const k of METRIC_KEYS) metrics[k] = mt[k];
        send({
          t: "stats",
          id: msg.id,
          members: app.balancer.members.map((m) => ({
            url: m.url,
            requests: m.requests,
            errors: m.errors,
            bytesIn: m.bytesIn,
            bytesOut: m.bytesOut,
            busy: m.busy,
            unreachable: m.pool.unreachableFailures,
          })),
          metrics,
        });
        return;
      }
      case "stop":
        void (app?.stop() ?? Promise.resolve()).then(() => process.exit(0));
        return;
    }
  });
  // The primary owns signals; a worker only stops when told.
  process.on("SIGTERM", () => undefined);
  process.on("SIGINT", () => undefined);
  process.on("SIGHUP", () => undefined);
  process.on("SIGUSR2", () => undefined);
}

export const isWorker = (): boolean => cluster.isWorker && process.env.PROXY_NODE_WORKER === "1";
