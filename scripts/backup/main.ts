/**
 * Backup and restore of a stack's data: the database and the shared files.
 *
 *   npm run backup [-- --stack <s>] [--to <folder>]
 *       writes <folder>/<stack>-<UTC time>/ with database.sql.gz, files.tar and
 *       manifest.json (stack, times, sizes, sha256 checksums, tool versions);
 *       <folder> defaults to $DRUPAL_CLUSTER_BACKUP_DIR, else backups/ in this
 *       checkout (git-ignored). The folder is 0700 and its files 0600: the dump
 *       is the site's database. A failed backup leaves no folder.
 *   npm run restore -- <backup folder> [--stack <s>] [--allow-other-stack]
 *       checks the manifest and every checksum first (refused, nothing changed,
 *       on any difference), then puts the database and the files back into the
 *       stack's cluster. A backup of another stack is refused unless
 *       --allow-other-stack.
 *
 * The stack is --stack, else $DRUPAL_CLUSTER_STACK, else dev. Both connect over
 * SSH with the stack's key and each host's recorded host key, as `up` does.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { version } from "../../package.json";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { takeBackup } from "./backup";
import { stackAccess } from "./cluster";
import { humanBytes } from "./progress";
import { restoreBackup } from "./restore";
import { shellQuote } from "../../infra/targets/ssh/remote-exec";

export const DEFAULT_BACKUP_ROOT = path.join(REPO_ROOT, "backups");

function usage(code: number): never {
  const header = fs.readFileSync(__filename, "utf8").split("\n");
  const text = header
    .slice(1, header.indexOf(" */"))
    .map((l) => l.replace(/^ \*\s?/, ""))
    .join("\n");
  (code === 0 ? process.stdout : process.stderr).write(`${text}\n`);
  process.exit(code);
}

interface Args {
  command: string;
  stack: string;
  to?: string;
  folder?: string;
  allowOtherStack: boolean;
}

function parseArgs(argv: string[]): Args {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || rest.includes("--help") || rest.includes("-h")) usage(0);
  const args: Args = { command, stack: process.env.DRUPAL_CLUSTER_STACK ?? "dev", allowOtherStack: false };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const value = (): string => {
      const v = rest[++i];
      if (v === undefined || v.startsWith("--")) {
        process.stderr.write(`${a} needs a value\n`);
        usage(2);
      }
      return v;
    };
    if (a === "--stack") args.stack = value();
    else if (a === "--to" && command === "backup") args.to = value();
    else if (a === "--allow-other-stack" && command === "restore") args.allowOtherStack = true;
    else if (!a.startsWith("--") && command === "restore" && args.folder === undefined) args.folder = a;
    else {
      process.stderr.write(`${command}: unknown argument ${a}\n`);
      usage(2);
    }
  }
  return args;
}

const say = (line: string): void => void process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  if (args.command === "backup") {
    const root = path.resolve(args.to ?? process.env.DRUPAL_CLUSTER_BACKUP_DIR ?? DEFAULT_BACKUP_ROOT);
    const r = await takeBackup(await stackAccess(args.stack, {}, say), { root, sink: say, version });
    const m = r.manifest;
    console.log(
      `backup: ${r.folder}\n  database ${humanBytes(m.database.bytes)}, files ${humanBytes(m.files.bytes)} (${m.files.fileCount} files), ${r.seconds.toFixed(1)} s\n` +
        `  restore with: DRUPAL_CLUSTER_STACK=${shellQuote(args.stack)} npm run restore -- ${shellQuote(r.folder)}`,
    );
    return;
  }
  if (args.command === "restore") {
    if (!args.folder) {
      process.stderr.write("restore: which backup folder? npm run restore -- <backup folder>\n");
      usage(2);
    }
    const folder = path.resolve(args.folder);
    const retryCommand = `DRUPAL_CLUSTER_STACK=${shellQuote(args.stack)} npm run restore -- ${shellQuote(folder)}${args.allowOtherStack ? " --allow-other-stack" : ""}`;
    const r = await restoreBackup(folder, () => stackAccess(args.stack, {}, say), { sink: say, allowOtherStack: args.allowOtherStack, retryCommand });
    console.log(
      `restore: stack ${args.stack} has the data of ${path.basename(folder)} (made ${r.manifest.finishedAt}); ${humanBytes(r.bytesSent)} sent, ${r.seconds.toFixed(1)} s`,
    );
    // Drupal keeps its cron key in the database: the restored one is the backup's, which this stack's cron may not send.
    if (r.manifest.app === "drupal")
      console.log(
        "  Drupal's cron key (system.cron_key) is now the backup's: set this stack's again on one web server, as root: /usr/local/sbin/drupal-cluster-cron-key",
      );
    return;
  }
  process.stderr.write(`unknown command ${args.command}\n`);
  usage(2);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
