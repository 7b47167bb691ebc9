/**
 * `npm run pulumi -- <arguments>`: the project's pulumi CLI (.tools/bin/pulumi,
 * built by scripts/bootstrap) run from the repository with the project's state
 * backend, secrets passphrase and plugins, so any pulumi command works against
 * any stack as documented, e.g.
 *
 *   openssl rand -base64 24 | npm run pulumi -- config set --stack staging --secret dbPassword
 *   npm run pulumi -- stack export --stack staging
 *   npm run pulumi -- refresh --stack staging
 *
 * A `config` command for a stack the backend does not know yet creates it
 * first (its encryption salt goes into Pulumi.<stack>.yaml, to be committed).
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { REPO_ROOT } from "../infra/config/stack-file";
import { engineEnv } from "./engine-env";
import { TOOLS_BIN } from "./toolchain";

function run(args: string[], stdio: "inherit" | "pipe"): { status: number; out: string; err: string } {
  const r = spawnSync(path.join(TOOLS_BIN, "pulumi"), args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...engineEnv(), PATH: `${TOOLS_BIN}:${process.env.PATH ?? ""}` },
    stdio: stdio === "inherit" ? "inherit" : ["ignore", "pipe", "pipe"],
    encoding: "utf8",
  });
  if (r.error) throw new Error(`${path.join(TOOLS_BIN, "pulumi")}: ${r.error.message} (run scripts/bootstrap)`);
  return { status: r.status ?? 1, out: r.stdout ?? "", err: r.stderr ?? "" };
}

function stackOf(args: string[]): string | undefined {
  const i = args.findIndex((a) => a === "--stack" || a === "-s");
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith("--stack="))?.slice("--stack=".length);
}

function main(args: string[]): number {
  const stack = stackOf(args);
  if (args[0] === "config" && stack !== undefined) {
    const known = run(["stack", "ls", "--json"], "pipe");
    if (known.status !== 0) {
      process.stderr.write(known.err);
      return known.status;
    }
    const names = (JSON.parse(known.out) as Array<{ name: string }>).map((s) => s.name);
    if (!names.includes(stack)) {
      const init = run(["stack", "init", stack, "--non-interactive"], "pipe");
      if (init.status !== 0) {
        process.stderr.write(`${init.out}${init.err}`);
        return init.status;
      }
      process.stderr.write(`created stack ${stack} in the project's backend\n`);
    }
  }
  return run(args, "inherit").status;
}

process.exit(main(process.argv.slice(2)));
