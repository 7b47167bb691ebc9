// `proxy-node admit|retire --config <file> ...`: run before a reload that changes
// the member list (member-changes.ts). Exit 0: go on with the reload; 1: a new
// member failed its health check, or admit could not check (do not reload);
// 2: usage or config error. retire never stops a reload: a drain it cannot
// finish only means the member's sticky clients move on sooner (their sessions
// are in the database).
import { Config, loadConfig } from "./config";
import { JsonLogger } from "./log";
import { admit, liveDeps, retire } from "./member-changes";

export const MEMBER_CHANGE_HELP = `  proxy-node admit --config <file> [--timeout <seconds>]
                                        before a reload: every member the file adds
                                        passes its health check from here (default 60 s)
  proxy-node retire --config <file> [--timeout <seconds>] [--idle <seconds>]
                                        before a reload: drain every running member the
                                        file no longer has until it had no request for
                                        --idle (default 3) or --timeout (default 30)
`;

export async function memberChangeCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const opts: Record<string, string> = {};
  while (rest.length > 0) {
    const flag = rest.shift() as string;
    const value = rest.shift();
    if (!["--config", "--timeout", "--idle"].includes(flag) || value === undefined || (flag === "--idle" && command !== "retire")) {
      process.stderr.write(`proxy-node ${command}: unexpected ${flag}${value === undefined ? " (no value)" : ""}\n\n${MEMBER_CHANGE_HELP}`);
      return 2;
    }
    opts[flag] = value;
  }
  const seconds = (flag: string, fallback: number): number => (opts[flag] === undefined ? fallback : Number(opts[flag]));
  const timeoutS = seconds("--timeout", command === "admit" ? 60 : 30);
  const idleS = seconds("--idle", 3);
  if (!opts["--config"] || ![timeoutS, idleS].every((n) => Number.isFinite(n) && n >= 0)) {
    process.stderr.write(`proxy-node ${command}: --config <file> is required, --timeout and --idle take seconds\n\n${MEMBER_CHANGE_HELP}`);
    return 2;
  }
  let cfg: Config;
  try {
    cfg = loadConfig(opts["--config"]);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const deps = liveDeps(cfg, new JsonLogger(false));
  try {
    if (command === "admit") await admit(cfg, deps, timeoutS);
    else await retire(cfg, deps, { timeoutS, idleS });
    return 0;
  } catch (e) {
    if (command === "retire") {
      process.stderr.write(`proxy-node retire: ${(e as Error).message}; the reload goes on without waiting\n`);
      return 0;
    }
    process.stderr.write(`proxy-node ${command}: ${(e as Error).message}\n`);
    return 1;
  }
}
