/**
 * `npm run restore -- <backup folder>`: puts a backup's database and shared
 * files back into a stack's cluster.
 *
 * Nothing is sent before every byte of the backup is checked against its
 * manifest (verifyBackup). Then both parts are staged beside the live data, the
 * database into a database of its own, the files into a folder inside the
 * shared folder (so the swap is a rename on the same file system, whatever is
 * mounted there), and only when both are staged, and the bytes sent hashed to
 * the manifest's checksums, are they swapped in:
 *
 * - the database with one RENAME TABLE statement (MariaDB runs it all or
 *   nothing): every live table moves aside, every staged table moves in;
 * - the files by moving each entry of the shared folder aside and each staged
 *   one in (renames: quick, but one by one).
 *
 * What was there before is removed once both swaps are done. A failure before
 * the swaps leaves the cluster as it was; one during them says what state it
 * left. Running the same restore again is always the way on: it starts over
 * and converges.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { ClusterAccess, checkedDatabaseName, OLD_DATABASE, OLD_DIR, STAGE_DATABASE, STAGE_DIR } from "./access";
import { BackupRefused, Manifest, verifyBackup } from "./manifest";
import { Meter, Progress, ProgressSink } from "./progress";
import { runChecked } from "./remote";
import { shellQuote } from "../../infra/targets/ssh/remote-exec";

export interface RestoreOptions {
  sink: ProgressSink;
  /** Restore a backup made of another stack (otherwise refused: the usual mistake is the wrong DRUPAL_CLUSTER_STACK). */
  allowOtherStack?: boolean;
  /** The command that runs this restore again, for messages (the CLI passes its own). */
  retryCommand?: string;
}

export interface RestoreResult {
  manifest: Manifest;
  seconds: number;
  /** Bytes sent to the hosts (both parts). */
  bytesSent: number;
  warnings: string[];
}

/** A restore that failed after its checks: the message says what state the cluster is in and how to go on. */
export class RestoreFailed extends Error {}

const id = (name: string): string => `\`${name.replace(/`/g, "``")}\``;
const mariadb = "mariadb --protocol=socket --default-character-set=utf8mb4";

/** One RENAME TABLE: the live tables into OLD_DATABASE, then the staged ones into the live database. */
export function swapDatabaseSql(live: string): string {
  const moves = (from: string, to: string, order: number): string =>
    `SELECT ${order} AS k, TABLE_NAME AS n, CONCAT('${id(from)}.\`', REPLACE(TABLE_NAME, '\`', '\`\`'), '\` TO ${id(to)}.\`', REPLACE(TABLE_NAME, '\`', '\`\`'), '\`') AS r ` +
    `FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${from}'`;
  return [
    "SET SESSION group_concat_max_len = 16777216;",
    // A long transaction on the live site must not hold the swap (and, queued behind it, the site) for MariaDB's default of a year.
    "SET SESSION lock_wait_timeout = 60;",
    `CREATE DATABASE IF NOT EXISTS ${id(live)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;`,
    `DROP DATABASE IF EXISTS ${id(OLD_DATABASE)};`,
    `CREATE DATABASE ${id(OLD_DATABASE)};`,
    `SELECT GROUP_CONCAT(r ORDER BY k, n SEPARATOR ', ') INTO @renames FROM (${moves(live, OLD_DATABASE, 1)} UNION ALL ${moves(STAGE_DATABASE, live, 2)}) AS x;`,
    // Built and run in this one session: no table can appear between listing and renaming.
    "SET @swap = IF(@renames IS NULL, 'DO 0', CONCAT('RENAME TABLE ', @renames));",
    "PREPARE swap FROM @swap;",
    "EXECUTE swap;",
    "DEALLOCATE PREPARE swap;",
    "",
  ].join("\n");
}

export async function restoreBackup(folder: string, connect: () => Promise<ClusterAccess>, opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = Date.now();
  const say = opts.sink;
  // Every byte first: nothing is sent (no host is even connected to) before this passes.
  const verified = await verifyBackup(folder, say);
  for (const w of verified.warnings) say(`warning: ${w}`);
  const m = verified.manifest;

  const access = await connect();
  if (m.project !== access.project) throw new BackupRefused(folder, `it is a backup of project ${m.project}, not ${access.project}`);
  if (m.stack !== access.stack && !opts.allowOtherStack) {
    throw new BackupRefused(
      folder,
      `it is a backup of stack ${m.stack} and this is stack ${access.stack} (DRUPAL_CLUSTER_STACK); to put it into ${access.stack} anyway, add --allow-other-stack`,
    );
  }
  if (m.app !== access.app) throw new BackupRefused(folder, `it holds the ${m.app} app's data and stack ${access.stack} runs ${access.app}`);
  const live = checkedDatabaseName(access.database);
  const data = access.data.remote;
  const files = access.files.remote;
  const p = shellQuote(access.files.publicPath);
  const stageDir = `${access.files.publicPath}/${STAGE_DIR}`;
  const oldDir = `${access.files.publicPath}/${OLD_DIR}`;
  const retry = opts.retryCommand ?? `DRUPAL_CLUSTER_STACK=${shellQuote(access.stack)} npm run restore -- ${shellQuote(folder)}`;
  const where = `database ${live} on ${data.label}, files ${access.files.publicPath} on ${files.label}`;
  say(`restore of ${path.basename(folder)} (stack ${m.stack}, ${m.finishedAt}) into stack ${access.stack}: ${where}`);

  const dropStages = async (): Promise<string> => {
    const problems: string[] = [];
    await runChecked(data, "dropping the staging database", `${mariadb} -e ${shellQuote(`DROP DATABASE IF EXISTS ${id(STAGE_DATABASE)}`)}`).catch((e: Error) =>
      problems.push(e.message),
    );
    await runChecked(files, "removing the staging folder", `rm -rf -- ${shellQuote(stageDir)}`).catch((e: Error) => problems.push(e.message));
    return problems.length ? ` (its staging copies could not all be removed: ${problems.join("; ")}; the next restore removes them)` : "";
  };
  const failed = (step: string, e: unknown, state: string): RestoreFailed =>
    new RestoreFailed(
      `restore into stack ${access.stack} failed while ${step}: ${e instanceof Error ? e.message : String(e)}\nState: ${state}\nTo retry (it starts over): ${retry}`,
    );

  // 1. Stage both parts; the live data is untouched.
  let sent: number;
  try {
    await runChecked(
      data,
      "checking the data server",
      `command -v mariadb >/dev/null && command -v gunzip >/dev/null || { echo "mariadb or gunzip is not installed" >&2; exit 3; }`,
    );
    await runChecked(
      files,
      "checking the shared folder",
      `test -d ${p} || { echo "${access.files.publicPath} is not a folder on this host: is the cluster up?" >&2; exit 3; }`,
    );
    const dbSent = await send(path.join(folder, m.database.file), `${m.database.file} -> database ${STAGE_DATABASE} (staging)`, say, (stdin) =>
      runChecked(
        data,
        "loading the dump into the staging database",
        [
          `${mariadb} -e ${shellQuote(`DROP DATABASE IF EXISTS ${id(STAGE_DATABASE)}; CREATE DATABASE ${id(STAGE_DATABASE)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`)} </dev/null`,
          `gunzip -c | ${mariadb} --database=${STAGE_DATABASE}`,
        ].join("\n"),
        { stdin },
      ),
    );
    const filesSent = await send(path.join(folder, m.files.file), `${m.files.file} -> ${stageDir} (staging)`, say, (stdin) =>
      runChecked(
        files,
        "unpacking the files into the staging folder",
        [
          `rm -rf -- ${shellQuote(stageDir)} ${shellQuote(oldDir)}`,
          `mkdir -m 0700 -- ${shellQuote(stageDir)}`,
          `tar --extract --file=- --numeric-owner --same-owner --same-permissions -C ${shellQuote(stageDir)}`,
        ].join("\n"),
        { stdin },
      ),
    );
    // The files were checked before; this catches one changed while it was being sent.
    for (const [name, got, want] of [
      [m.database.file, dbSent.sha256, m.database.sha256],
      [m.files.file, filesSent.sha256, m.files.sha256],
    ] as const) {
      if (got !== want) throw new Error(`${name} changed while it was sent (sha256 ${got}, the manifest says ${want})`);
    }
    sent = dbSent.bytes + filesSent.bytes;
  } catch (e) {
    const left = await dropStages();
    throw failed("staging the backup beside the live data", e, `nothing was changed: the cluster's database and files are as they were${left}.`);
  }

  // 2. The database: one statement, all or nothing.
  try {
    await runChecked(data, "swapping the database tables", mariadb, { stdin: readableOf(swapDatabaseSql(live)) });
    say(`database ${live}: the backup's tables are live`);
  } catch (e) {
    const left = await dropStages();
    throw failed(
      "swapping the database tables",
      e,
      `nothing was changed (the swap is one RENAME TABLE, all or nothing): the cluster's database and files are as they were${left}.`,
    );
  }

  // 3. The files: entry by entry.
  try {
    await runChecked(
      files,
      "swapping the shared files",
      [
        `p=${p}; st=${shellQuote(stageDir)}; old=${shellQuote(oldDir)}`,
        `test -d "$st"`,
        `rm -rf -- "$old"; mkdir -m 0700 -- "$old"`,
        `find "$p" -mindepth 1 -maxdepth 1 ! -name ${shellQuote(STAGE_DIR)} ! -name ${shellQuote(OLD_DIR)} -exec mv -t "$old" -- {} +`,
        `find "$st" -mindepth 1 -maxdepth 1 -exec mv -t "$p" -- {} +`,
        // The shared folder's own owner and mode, as the archive's "." had them.
        `chown --reference="$st" -- "$p"; chmod --reference="$st" -- "$p"`,
        `rmdir -- "$st"`,
      ].join("\n"),
    );
    say(`files ${access.files.publicPath}: the backup's files are live`);
  } catch (e) {
    throw failed(
      "swapping the shared files",
      e,
      `the database is the backup's; the shared files may be partly the backup's: on ${files.label}, the backup's files not yet moved are in ${stageDir}, ` +
        `the previous ones moved aside are in ${oldDir}. The site may show missing files until the restore is run again.`,
    );
  }

  // 4. What was live before: no longer needed.
  const warnings = [...verified.warnings];
  await runChecked(
    data,
    "dropping the previous tables",
    `${mariadb} -e ${shellQuote(`DROP DATABASE IF EXISTS ${id(OLD_DATABASE)}; DROP DATABASE IF EXISTS ${id(STAGE_DATABASE)}`)}`,
  ).catch((e: Error) =>
    warnings.push(`the restore is done, but the previous tables in database ${OLD_DATABASE} on ${data.label} could not be dropped: ${e.message}`),
  );
  await runChecked(files, "removing the previous files", `rm -rf -- ${shellQuote(oldDir)}`).catch((e: Error) =>
    warnings.push(`the restore is done, but the previous files in ${oldDir} on ${files.label} could not be removed: ${e.message}`),
  );
  for (const w of warnings.slice(verified.warnings.length)) say(`warning: ${w}`);
  return { manifest: m, seconds: (Date.now() - t0) / 1000, bytesSent: sent, warnings };
}

/** Streams a local file to a remote command's stdin with progress; the bytes sent are hashed on the way. */
async function send(file: string, label: string, sink: ProgressSink, run: (stdin: Readable) => Promise<unknown>): Promise<{ bytes: number; sha256: string }> {
  const progress = new Progress(label, sink);
  const meter = new Meter((n) => progress.update(n));
  const source = fs.createReadStream(file);
  source.on("error", (e) => meter.destroy(e));
  source.pipe(meter);
  try {
    await run(meter);
  } finally {
    // A remote side that stopped early leaves the file half read: close it either way.
    source.destroy();
  }
  progress.done(meter.bytes);
  return { bytes: meter.bytes, sha256: meter.sha256() };
}

function readableOf(text: string): Readable {
  return Readable.from([Buffer.from(text)]);
}
