// proxy-node command line. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
import * as http from "node:http";
import type * as net from "node:net";
import { loadConfig, ConfigError, Config } from "./config";
import { JsonLogger } from "./log";
import { ProxyNode } from "./app";
import { ApacheAgent } from "./agent";
import { VERSION } from "./version";
import { ClusterPrimary, isWorker, runWorker } from "./cluster";
import { closeSync } from "node:fs";
import type { PeerMember } from "./peers";
import { announceReady, Inheritance, ListenerName, startSuccessor, takeInheritance, tellSystemd, writePidfile } from "./handover";

const HELP = `proxy-node ${VERSION}: sticky-session balancer compatible with mod_proxy_balancer

Usage:
  proxy-node --config <file> [--pidfile <file>]
                                        run (mode "serve" or "agent", from the file);
                                        the pidfile names the process serving, also
                                        after a handover
  proxy-node --config <file> --check    validate the config file and exit
  proxy-node drain <route> --config <file> [--timeout <seconds>]
                                        stop new sessions to one member, keep its
                                        sticky clients until the timeout (default 300),
                                        then disable it
  proxy-node enable <route> --config <file>
                                        put a drained or disabled member back
  proxy-node --help | --version

With "workers": N > 1 or "auto" (one per CPU) in serve mode, node:cluster
workers share the port and the primary runs the manager and health checks.

Signals: SIGHUP re-reads the config (a bad file is refused, the old one keeps
serving); SIGTERM/SIGINT stop gracefully, letting in-flight requests finish;
SIGUSR2 hands the listening sockets over to the bin as it is on disk now (a new
process), then stops gracefully once that one serves; if it cannot serve, this
process goes on.
`;

interface Args {
  command: "run" | "drain" | "enable";
  route: string;
  config: string;
  pidfile: string;
  check: boolean;
  timeout: number;
}

function parseArgs(argv: string[]): Args | string {
  const a: Args = { command: "run", route: "", config: "", pidfile: "", check: false, timeout: 300 };
  const rest = [...argv];
  if (rest[0] === "drain" || rest[0] === "enable") {
    a.command = rest.shift() as "drain" | "enable";
    const route = rest.shift();
    if (!route || route.startsWith("-")) return `${a.command}: expected a member route`;
    a.route = route;
  }
  while (rest.length > 0) {
    const arg = rest.shift() as string;
    switch (arg) {
      case "--config":
      case "-c": {
        const v = rest.shift();
        if (!v) return "--config needs a file";
        a.config = v;
        break;
      }
      case "--check":
        a.check = true;
        break;
      case "--pidfile": {
        const v = rest.shift();
        if (!v) return "--pidfile needs a file";
        a.pidfile = v;
        break;
      }
      case "--timeout": {
        const v = Number(rest.shift());
        if (!Number.isFinite(v) || v < 0) return "--timeout needs a number of seconds";
        a.timeout = v;
        break;
      }
      default:
        return `unknown argument ${arg}`;
    }
  }
  if (!a.config) return "--config <file> is required";
  return a;
}

function managerRequest(cfg: Config, route: string, body: object): Promise<number> {
  const mgr = cfg.manager;
  if (!mgr) return Promise.reject(new Error('config has no "manager": cannot reach the running proxy-node'));
  const host = mgr.host === "0.0.0.0" || mgr.host === "::" ? "127.0.0.1" : mgr.host;
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host,
        port: mgr.port,
        method: "POST",
        path: `/api/members/${encodeURIComponent(route)}`,
        agent: false,
        headers: { Authorization: `Bearer ${mgr.token}`, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

async function setMember(cfg: Config, route: string, state: "draining" | "disabled" | "enabled", logger: JsonLogger): Promise<boolean> {
  if (cfg.mode === "agent" && cfg.apache) {
    const member = cfg.balancer.members.find((m) => m.route === route);
    if (!member) throw new ConfigError("balancer.members", `no member with route ${route}`);
    const agent = new ApacheAgent(cfg.apache, logger);
    const flags = state === "draining" ? { N: 1 as const } : state === "disabled" ? { D: 1 as const, N: 0 as const } : { D: 0 as const, N: 0 as const };
    return agent.setFlags(member.url, flags);
  }
  const status = await managerRequest(cfg, route, { status: state });
  if (status !== 200) logger.event("error", `manager answered ${status}`, { route, state });
  return status === 200;
}

export async function main(argv: string[]): Promise<number> {
  if (isWorker()) {
    // Cluster worker: config and state come from the primary; it exits when told.
    runWorker(new JsonLogger(false));
    return new Promise<number>(() => undefined);
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HELP);
    return 0;
  }
  if (argv.includes("--version") || argv.includes("-v")) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const args = parseArgs(argv);
  if (typeof args === "string") {
    process.stderr.write(`proxy-node: ${args}\n\n${HELP}`);
    return 2;
  }
  let cfg: Config;
  try {
    cfg = loadConfig(args.config);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (args.check) {
    process.stdout.write(`config ok: ${args.config} (mode ${cfg.mode}, ${cfg.balancer.members.length} members)\n`);
    return 0;
  }
  const logger = new JsonLogger(cfg.log.requests);
  if (args.command !== "run") {
    const route = args.route;
    if (args.command === "enable") return (await setMember(cfg, route, "enabled", logger)) ? 0 : 1;
    if (!(await setMember(cfg, route, "draining", logger))) return 1;
    logger.event("info", `draining ${route}; disabling it in ${args.timeout} s`);
    await new Promise((r) => setTimeout(r, args.timeout * 1000));
    return (await setMember(cfg, route, "disabled", logger)) ? 0 : 1;
  }

  // Until it serves, a SIGUSR2 (whose default is to end the process) is only noted: the handover follows the start.
  let usr2Early = false;
  const early = (): void => {
    usr2Early = true;
  };
  process.on("SIGUSR2", early);
  let inherited: Inheritance | null;
  try {
    inherited = takeInheritance();
  } catch (e) {
    logger.event("error", "cannot start", { error: (e as Error).message });
    return 1;
  }
  const clustered = cfg.mode === "serve" && cfg.workers > 1;
  const primary = clustered ? new ClusterPrimary(cfg, logger) : null;
  const app = primary ? primary.app : new ProxyNode(cfg, logger);
  app.inherited = inherited;
  const listeners = (): Partial<Record<ListenerName, net.Server>> => (primary ? primary.listeners() : app.listeners());
  try {
    if (primary) {
      await primary.start();
      logger.event("info", "proxy-node cluster started", { workers: cfg.workers, listen: `${cfg.listen.host}:${cfg.listen.port}` });
    } else await app.start();
  } catch (e) {
    logger.event("error", "cannot start", { error: (e as Error).message });
    return 1;
  }
  if (inherited) {
    // A listener lent but not taken (this config has no such listener) must not hold its port.
    const taken = listeners();
    for (const [name, fd] of Object.entries(inherited.listeners) as [ListenerName, number][]) if (!taken[name]) closeSync(fd);
  }
  if (args.pidfile) writePidfile(args.pidfile);
  if (inherited) {
    await announceReady();
    logger.event("info", "handover: serving on the listeners of the process replaced");
  }
  process.on("SIGHUP", () => {
    try {
      const next = loadConfig(args.config);
      if (primary) primary.reload(next);
      else app.reload(next);
    } catch (e) {
      app.metrics.reloadFailures++;
      logger.event("error", "reload refused; the old config keeps serving", { error: (e as Error).message });
    }
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.event("info", `${why}: stopping, letting in-flight requests finish`);
      void (primary ? primary.stop() : app.stop()).then(() => resolve(0));
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    let handingOver = false;
    const handover = (): void => {
      if (handingOver || stopping) return;
      handingOver = true;
      logger.event("info", "SIGUSR2: handing the listeners over to a new process");
      void handOver(listeners(), app.memberState(), logger).then(
        (pid) => stop(`handed over to ${pid}`),
        (e: Error) => {
          handingOver = false;
          // The successor may have named itself there before it failed.
          if (args.pidfile) writePidfile(args.pidfile);
          logger.event("error", "handover failed; this process keeps serving", { error: e.message });
        },
      );
    };
    process.off("SIGUSR2", early);
    process.on("SIGUSR2", handover);
    if (usr2Early) handover();
  });
}

/** Starts the successor and, under systemd, makes it the main process; a successor systemd was not told of is stopped again. */
async function handOver(listeners: Partial<Record<ListenerName, net.Server>>, members: PeerMember[], logger: JsonLogger): Promise<number> {
  const pid = await startSuccessor(listeners, members);
  try {
    await tellSystemd(pid);
  } catch (e) {
    process.kill(pid, "SIGTERM");
    throw e;
  }
  logger.event("info", "handover: the new process serves", { pid });
  return pid;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`proxy-node: ${e.message}\n`);
      process.exit(1);
    },
  );
}
