// proxy-node's bin as the package ships it (package.json "bin"): src bundled by
// scripts/build.js into one script, built once per test run.
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PACKAGE = join(__dirname, "..");

let built = "";

export function builtBin(): string {
  if (!built) {
    execFileSync(process.execPath, [join(PACKAGE, "scripts", "build.js")], { stdio: ["ignore", "ignore", "inherit"] });
    const pkg = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")) as { bin: Record<string, string> };
    built = join(PACKAGE, pkg.bin["proxy-node"]);
  }
  return built;
}

/** The bin running on a config of the test's, as a process of its own. */
export interface RunningBin {
  child: ChildProcess;
  /** Everything it has logged on stderr so far (events, JSON lines). */
  stderr(): string;
  /** SIGTERM if it still runs, then its config folder removed. */
  stop(): Promise<void>;
}

/**
 * Writes `config` to a temporary file and starts the bin on it (another copy of
 * it with `bin`, more arguments with `args`); stdout (request lines) is dropped.
 */
export function runBin(config: object, opts: { bin?: string; args?: string[] } = {}): RunningBin {
  const dir = mkdtempSync(join(tmpdir(), "proxy-node-bin-"));
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [opts.bin ?? builtBin(), "--config", file, ...(opts.args ?? [])], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return {
    child,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
