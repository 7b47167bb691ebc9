/**
 * `npm run backup`: the stack's database and shared files, streamed from their
 * hosts into a new folder on this machine, with a manifest.
 *
 * - The database: `mariadb-dump --single-transaction` on the data server (one
 *   consistent snapshot of every InnoDB table without locking the site), gzip'd
 *   there so less crosses the network, streamed to disk chunk by chunk.
 * - The files: a tar of files.publicPath from the host where that folder is
 *   the shared storage itself (the data server's NFS export, or a web server's
 *   external mount), not compressed: uploads are mostly images and PDFs that
 *   are compressed already.
 * - The database first, then the files: a file the database names was written
 *   before its row, so it is in the archive. A file uploaded between the two
 *   may be in the archive without a row naming it, which Drupal ignores.
 *
 * The folder is written as .<name>.partial and renamed when everything is on
 * disk and flushed: a backup folder without the dot is always whole. A failure
 * (or Ctrl-C) removes the partial folder. Folder 0700, files 0600: the dump is
 * the site's database (sessions, users' password hashes; with Drupal, its state,
 * which holds the cron key). No other secret of the stack (passwords, keys,
 * tokens) is written to it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ClusterAccess, checkedDatabaseName, STAGE_DIR, OLD_DIR } from "./access";
import { FilesPart, Manifest, MANIFEST_FILE, PART_FILES, sealManifest } from "./manifest";
import { Meter, Progress, ProgressSink } from "./progress";
import { Remote, runChecked } from "./remote";
import { shellQuote } from "../../infra/targets/ssh/remote-exec";

export interface BackupOptions {
  /** The folder the backup's own folder is made in (created 0700 if missing). */
  root: string;
  sink: ProgressSink;
  /** drupal-cluster's version, for the manifest. */
  version: string;
  now?: () => Date;
}

export interface BackupResult {
  folder: string;
  manifest: Manifest;
  seconds: number;
}

export const DUMP_COMMAND =
  "mariadb-dump --protocol=socket --single-transaction --quick --skip-triggers --hex-blob --default-character-set=utf8mb4 --no-tablespaces";

/** Lines of `key=value` (a key may repeat) as a map of lists. */
function keyValues(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const k = line.slice(0, eq);
    out.set(k, [...(out.get(k) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

function one(kv: Map<string, string[]>, key: string, where: string): string {
  const v = kv.get(key)?.[0];
  if (v === undefined) throw new Error(`${where} did not report ${key}`);
  return v;
}

const requireTools = (tools: string[]): string =>
  tools.map((t) => `command -v ${t} >/dev/null || { echo "${t} is not installed on this host" >&2; exit 3; }`).join("\n");

const sql = (query: string): string => `mariadb --protocol=socket -N -B -e ${shellQuote(query)} </dev/null`;

/** Versions, and whether the database holds only what a dump of tables restores. */
async function inspectDatabase(remote: Remote, db: string): Promise<Record<string, string>> {
  const others =
    `SELECT CONCAT(LOWER(TABLE_TYPE), ' ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}' AND TABLE_TYPE <> 'BASE TABLE' ` +
    `UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '${db}' ` +
    `UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${db}' ` +
    `UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '${db}'`;
  const script = [
    requireTools(["mariadb", "mariadb-dump", "gzip"]),
    `echo "mariadb-dump=$(mariadb-dump --version)"`,
    `echo "gzip=$(gzip --version | head -n1)"`,
    `echo "server=$(${sql("SELECT VERSION()")})"`,
    `echo "exists=$(${sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`)})"`,
    `${sql(others)} | sed 's/^/other=/'`,
  ].join("\n");
  const kv = keyValues((await runChecked(remote, "inspecting the database", script)).stdout);
  if (one(kv, "exists", remote.label) !== "1") throw new Error(`the database ${db} does not exist on ${remote.label}: is the cluster up (npm run up)?`);
  const objects = kv.get("other") ?? [];
  if (objects.length) {
    throw new Error(
      `the database ${db} holds ${objects.join(", ")}: the backup covers tables (all Drupal and the probe app use); ` +
        `back up a database with views, triggers, routines or events with your own mariadb-dump options`,
    );
  }
  return { "mariadb-dump": one(kv, "mariadb-dump", remote.label), "mariadb server": one(kv, "server", remote.label), gzip: one(kv, "gzip", remote.label) };
}

/** Files' count and bytes (ours excluded), tar's version, and whether the folder is a mount. */
async function inspectFiles(remote: Remote, publicPath: string): Promise<{ tar: string; fileCount: number; contentBytes: number; mounted: boolean }> {
  const p = shellQuote(publicPath);
  const walk = `find ${p} -xdev \\( -name ${shellQuote(STAGE_DIR)} -o -name ${shellQuote(OLD_DIR)} \\) -prune -o -type f`;
  const script = [
    requireTools(["tar", "find", "awk"]),
    `test -d ${p} || { echo "${publicPath} is not a folder on this host" >&2; exit 3; }`,
    `echo "tar=$(tar --version | head -n1)"`,
    `echo "fileCount=$(${walk} -print | wc -l)"`,
    `echo "contentBytes=$(${walk} -printf '%s\\n' | awk '{ s += $1 } END { printf "%.0f\\n", s }')"`,
    `if command -v mountpoint >/dev/null && mountpoint -q ${p}; then echo mounted=yes; else echo mounted=no; fi`,
  ].join("\n");
  const kv = keyValues((await runChecked(remote, "inspecting the shared files", script)).stdout);
  return {
    tar: one(kv, "tar", remote.label),
    fileCount: Number(one(kv, "fileCount", remote.label)),
    contentBytes: Number(one(kv, "contentBytes", remote.label)),
    mounted: one(kv, "mounted", remote.label) === "yes",
  };
}

/** A mode-0600 file that only this call creates ("wx"), flushed to disk before it counts as written. */
async function streamToFile(
  file: string,
  label: string,
  sink: ProgressSink,
  fill: (into: Writable) => Promise<void>,
): Promise<{ bytes: number; sha256: string }> {
  const progress = new Progress(label, sink);
  const meter = new Meter((n) => progress.update(n));
  const out = fs.createWriteStream(file, { flags: "wx", mode: 0o600 });
  await Promise.all([fill(meter), pipeline(meter, out)]);
  fs.chmodSync(file, 0o600);
  fsync(file);
  progress.done(meter.bytes);
  return { bytes: meter.bytes, sha256: meter.sha256() };
}

function fsync(p: string): void {
  const fd = fs.openSync(p, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** 2026-12-01T10:15:30.123Z -> 20261201T101530Z: sorts by time, no ":" (which some tools read as host:path). */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/[-:]/g, "");
}

function freeName(root: string, base: string): string {
  for (let i = 1; ; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    if (!fs.existsSync(path.join(root, name)) && !fs.existsSync(path.join(root, `.${name}.partial`))) return name;
  }
}

export async function takeBackup(access: ClusterAccess, opts: BackupOptions): Promise<BackupResult> {
  const now = opts.now ?? ((): Date => new Date());
  const t0 = Date.now();
  const started = now();
  const db = checkedDatabaseName(access.database);
  const say = opts.sink;

  say(`backup of stack ${access.stack}: database ${db} on ${access.data.remote.label}, files ${access.files.publicPath} on ${access.files.remote.label}`);
  let dbTools: Record<string, string>;
  let filesInfo: Awaited<ReturnType<typeof inspectFiles>>;
  try {
    dbTools = await inspectDatabase(access.data.remote, db);
    filesInfo = await inspectFiles(access.files.remote, access.files.publicPath);
  } catch (e) {
    throw new Error(`backup of stack ${access.stack} failed before anything was written: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (access.files.share === "external" && !filesInfo.mounted) {
    say(
      `warning: ${access.files.publicPath} on ${access.files.host} is not a mount point: with files.share external the shared storage should be mounted there; backing up the folder as it is`,
    );
  }

  fs.mkdirSync(opts.root, { recursive: true, mode: 0o700 });
  const name = freeName(opts.root, `${access.stack}-${stamp(started)}`);
  const partial = path.join(opts.root, `.${name}.partial`);
  const folder = path.join(opts.root, name);
  fs.mkdirSync(partial, { mode: 0o700 });
  // mkdir's mode passes through the umask, which can only take bits away; set it exactly.
  fs.chmodSync(partial, 0o700);

  // Ctrl-C or a kill during the transfer: the partial folder goes, as on any failure.
  const onSignal = (sig: NodeJS.Signals): void => {
    fs.rmSync(partial, { recursive: true, force: true });
    process.stderr.write(`\nbackup interrupted (${sig}): the partial folder ${partial} was removed\n`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const dbPart = await streamToFile(path.join(partial, PART_FILES.database), `database ${db} -> ${PART_FILES.database}`, say, async (into) => {
      await runChecked(access.data.remote, "mariadb-dump", `${DUMP_COMMAND} ${db} | gzip -c -6`, { stdout: into });
    });
    let tarWarning = "";
    const filesPart = await streamToFile(path.join(partial, PART_FILES.files), `files ${access.files.publicPath} -> ${PART_FILES.files}`, say, async (into) => {
      const r = await runChecked(
        access.files.remote,
        "tar of the shared files",
        [
          `cd -- ${shellQuote(access.files.publicPath)}`,
          // Never our own restore's staging folders, should a failed restore have left them.
          `set +e; tar --create --file=- --numeric-owner --one-file-system --exclude=${shellQuote(STAGE_DIR)} --exclude=${shellQuote(OLD_DIR)} .; rc=$?; set -e`,
          // GNU tar's 1: a file changed while it was read (an upload in progress); the rest is whole.
          `if [ "$rc" -eq 1 ]; then echo "warning: some files changed while tar read them; those may be cut short in the archive" >&2; exit 0; fi`,
          `exit "$rc"`,
        ].join("\n"),
        { stdout: into },
      );
      tarWarning = r.stderr
        .split("\n")
        .filter((l) => l.startsWith("warning:"))
        .join("; ");
    });
    if (tarWarning) say(tarWarning);

    const files: FilesPart = {
      file: PART_FILES.files,
      ...filesPart,
      publicPath: access.files.publicPath,
      share: access.files.share,
      host: access.files.host,
      fileCount: filesInfo.fileCount,
      contentBytes: filesInfo.contentBytes,
    };
    const manifest = sealManifest({
      format: "drupal-cluster-backup/1",
      project: access.project,
      stack: access.stack,
      app: access.app,
      startedAt: started.toISOString(),
      finishedAt: now().toISOString(),
      database: { file: PART_FILES.database, ...dbPart, name: db, host: access.data.host, command: `${DUMP_COMMAND} ${db} | gzip -c -6` },
      files,
      tools: { ...dbTools, tar: filesInfo.tar, node: process.version, "drupal-cluster": opts.version },
    });
    const manifestFile = path.join(partial, MANIFEST_FILE);
    fs.writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, { flag: "wx", mode: 0o600 });
    fs.chmodSync(manifestFile, 0o600);
    fsync(manifestFile);
    fsync(partial);
    fs.renameSync(partial, folder);
    fsync(opts.root);
    return { folder, manifest, seconds: (Date.now() - t0) / 1000 };
  } catch (e) {
    fs.rmSync(partial, { recursive: true, force: true });
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(
      `backup of stack ${access.stack} failed: ${why}\nThe partial folder ${partial} was removed; nothing on the cluster was changed (a backup only reads).`,
      { cause: e },
    );
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}
