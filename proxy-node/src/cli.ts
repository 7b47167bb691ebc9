// proxy-node command line. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
import type * as net from "node:net";
import { loadConfig, Config } from "./config";
import { JsonLogger } from "./log";
import { ProxyNode } from "./app";
import { drainThenDisable, enableAndWait, memberStatus, othersServing, setStatus, UnknownMember } from "./member-control";
import { VERSION } from "./version";
import { ClusterPrimary, isWorker, runWorker } from "./cluster";
import { MEMBER_CHANGE_HELP, memberChangeCommand } from "./member-changes-cli";
import { closeSync } from "node:fs";
import type { PeerMember } from "./peers";
import { announceReady, Inheritance, ListenerName, startSuccessor, takeInheritance, tellSystemd, writePidfile } from "./handover";
import { takePrebound } from "./prebound";

const HELP = `proxy-node ${VERSION}: sticky-session balancer compatible with mod_proxy_balancer

Usage:
  proxy-node --config <file> [--pidfile <file>]
                                        run (mode "serve" or "agent", from the file);
                                        the pidfile names the process serving, also
                                        after a handover
  proxy-node --config <file> --check    validate the config file and exit
  proxy-node drain <route> --config <file> [--timeout <seconds>] [--idle <seconds>] [--no-wait] [--keep-one]
                                        stop new sessions to one member, keep its
                                        sticky clients until the timeout (default 300)
                                        or until it got no request for --idle seconds,
                                        then disable it; --no-wait leaves it draining;
                                        --keep-one: change nothing and exit 4 if no
                                        other member takes new clients (enabled, healthy)
  proxy-node disable <route> --config <file>
                                        no requests at all (sticky clients move on)
  proxy-node enable <route> --config <file> [--wait-healthy <seconds>]
                                        put a drained or disabled member back; with
                                        --wait-healthy, until its health check passes
  proxy-node status <route> --config <file>
                                        print its status and state
  Exit codes of these: 0 done, 1 failed, 2 usage, 3 no such member,
  4 not drained (--keep-one: the last member taking new clients).
${MEMBER_CHANGE_HELP}  proxy-node --help | --version

With "workers": N > 1 or "auto" (one per CPU) in serve mode, node:cluster
workers share the port and the primary runs the manager and health checks.

Signals: SIGHUP re-reads the config (a bad file is refused, the old one keeps
serving); SIGTERM/SIGINT stop gracefully, letting in-flight requests finish;
SIGUSR2 hands the listening sockets over to the bin as it is on disk now (a new
process), then stops gracefully once that one serves; if it cannot serve, this
process goes on.

Environment: PROXY_NODE_LISTEN_FDS='{"client":3}' serves on listeners the caller
bound (inherited descriptors) instead of binding them.
`;

const MEMBER_COMMANDS = ["drain", "disable", "enable", "status"] as const;
type MemberCommand = (typeof MEMBER_COMMANDS)[number];

interface Args {
  command: "run" | MemberCommand;
  route: string;
  config: string;
  pidfile: string;
  check: boolean;
  timeout: number;
  idle: number;
  wait: boolean;
  keepOne: boolean;
  waitHealthy: number;
}

function seconds(v: string | undefined, flag: string): number | string {
  const n = Number(v);
  return v === undefined || v === "" || !Number.isFinite(n) || n < 0 ? `${flag} needs a number of seconds` : n;
}

function parseArgs(argv: string[]): Args | string {
  const a: Args = { command: "run", route: "", config: "", pidfile: "", check: false, timeout: 300, idle: 0, wait: true, keepOne: false, waitHealthy: 0 };
  const rest = [...argv];
  if ((MEMBER_COMMANDS as readonly string[]).includes(rest[0])) {
    a.command = rest.shift() as MemberCommand;
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
      case "--timeout":
      case "--idle":
      case "--wait-healthy": {
        const v = seconds(rest.shift(), arg);
        if (typeof v === "string") return v;
        if (arg === "--timeout") a.timeout = v;
        else if (arg === "--idle") a.idle = v;
        else a.waitHealthy = v;
        break;
      }
      case "--no-wait":
        a.wait = false;
        break;
      case "--keep-one":
        a.keepOne = true;
        break;
      default:
        return `unknown argument ${arg}`;
    }
  }
  if (!a.config) return "--config <file> is required";
  return a;
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
  if (argv[0] === "admit" || argv[0] === "retire") return memberChangeCommand(argv);
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
  if (args.command !== "run") return memberCommand(cfg, args, logger);

  // Until it serves, a SIGUSR2 (whose default is to end the process) is only noted: the handover follows the start.
  let usr2Early = false;
  const early = (): void => {
    usr2Early = true;
  };
  process.on("SIGUSR2", early);
  let inherited: Inheritance | null;
  let prebound: Partial<Record<ListenerName, number>>;
  try {
    inherited = takeInheritance();
    prebound = takePrebound();
  } catch (e) {
    logger.event("error", "cannot start", { error: (e as Error).message });
    return 1;
  }
  const clustered = cfg.mode === "serve" && cfg.workers > 1;
  const primary = clustered ? new ClusterPrimary(cfg, logger) : null;
  const app = primary ? primary.app : new ProxyNode(cfg, logger);
  app.inherited = inherited;
  app.prebound = prebound;
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
  // A listener lent or bound for this process but not taken (this config has no such listener) must not hold its port.
  const taken = listeners();
  for (const given of [inherited?.listeners ?? {}, prebound])
    for (const [name, fd] of Object.entries(given) as [ListenerName, number][]) if (!taken[name]) closeSync(fd);
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

/** One line per step on stdout: what an operator (or `pulumi up`'s log) reads. */
async function memberCommand(cfg: Config, args: Args, logger: JsonLogger): Promise<number> {
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const route = args.route;
  try {
    if (args.command === "status") {
      const m = await memberStatus(cfg, route);
      say(`${m.route} ${m.status} ${m.state}`);
    } else if (args.command === "enable") await enableAndWait(cfg, route, args.waitHealthy, say, logger);
    else if (args.command === "disable") {
      await setStatus(cfg, route, "disabled", logger);
      say(`${route}: disabled`);
    } else if (args.keepOne && (await othersServing(cfg, route)).length === 0) {
      say(`${route}: not drained: no other member takes new clients (enabled and healthy), so its clients would get errors`);
      return 4;
    } else if (!args.wait) {
      await setStatus(cfg, route, "draining", logger);
      say(`${route}: draining (no new clients; sticky clients go on until it is enabled or disabled)`);
    } else await drainThenDisable(cfg, route, { timeoutS: args.timeout, idleS: args.idle, say, logger });
    return 0;
  } catch (e) {
    process.stderr.write(`proxy-node ${args.command} ${route}: ${(e as Error).message}\n`);
    return e instanceof UnknownMember ? 3 : 1;
  }
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
