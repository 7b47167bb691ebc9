/**
 * The backup folder's manifest: what was backed up, from where, when, with
 * which tools, and each part's size and sha256. A restore reads it and checks
 * every byte (verifyBackup) before it connects to any host, so a damaged or
 * edited backup is refused with nothing changed.
 *
 * The manifest carries its own checksum (of its other fields), so an edit of
 * the manifest itself (another stack name, a time) is refused too, not only an
 * edit of a part.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Meter, Progress, ProgressSink } from "./progress";

export const MANIFEST_FILE = "manifest.json";
export const FORMAT = "drupal-cluster-backup/1";

/** The parts and their fixed file names: a manifest cannot point anywhere else (no "../"). */
export const PART_FILES = { database: "database.sql.gz", files: "files.tar" } as const;
export type PartName = keyof typeof PART_FILES;

export interface PartEntry {
  file: string;
  bytes: number;
  sha256: string;
}

export interface DatabasePart extends PartEntry {
  /** The database's name on the data server it came from. */
  name: string;
  host: string;
  /** How it was made (the command, no secret in it). */
  command: string;
}

export interface FilesPart extends PartEntry {
  publicPath: string;
  share: "nfs" | "external";
  host: string;
  /** Regular files under publicPath when the archive was made, and their bytes. */
  fileCount: number;
  contentBytes: number;
}

export interface Manifest {
  format: typeof FORMAT;
  project: string;
  stack: string;
  app: "probe" | "drupal";
  startedAt: string;
  finishedAt: string;
  database: DatabasePart;
  files: FilesPart;
  /** Versions of what made the backup: on the hosts (mariadb-dump, tar, ...) and here (node, drupal-cluster). */
  tools: Record<string, string>;
  /** sha256 of this manifest without this field (manifestBody). */
  manifestSha256: string;
}

/** A backup that cannot be restored; nothing was changed anywhere when this is thrown. */
export class BackupRefused extends Error {
  constructor(folder: string, problem: string) {
    super(`backup ${folder} is refused: ${problem}. Nothing was changed.`);
  }
}

/** The manifest's checksummed text: every field but manifestSha256, in a fixed key order. */
export function manifestBody(m: Omit<Manifest, "manifestSha256">): string {
  const { format, project, stack, app, startedAt, finishedAt, database, files, tools } = m;
  return JSON.stringify({ format, project, stack, app, startedAt, finishedAt, database, files, tools }, null, 2);
}

export function sealManifest(m: Omit<Manifest, "manifestSha256">): Manifest {
  return { ...m, manifestSha256: createHash("sha256").update(manifestBody(m)).digest("hex") };
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Checks one field's type; the message names the field as a path in the manifest. */
class Fields {
  constructor(
    private readonly o: Json,
    private readonly at: string,
  ) {}

  string(key: string, re?: RegExp): string {
    const v = this.o[key];
    if (typeof v !== "string" || v === "") throw new Error(`${this.at}${key} is missing or not a string`);
    if (re && !re.test(v)) throw new Error(`${this.at}${key} ${JSON.stringify(v.slice(0, 80))} is not accepted`);
    return v;
  }

  count(key: string): number {
    const v = this.o[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new Error(`${this.at}${key} is not a whole number of 0 or more`);
    return v;
  }

  object(key: string): Fields {
    const v = this.o[key];
    if (!isObject(v)) throw new Error(`${this.at}${key} is missing or not an object`);
    return new Fields(v, `${this.at}${key}.`);
  }

  raw(): Json {
    return this.o;
  }
}

const SHA256 = /^[0-9a-f]{64}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function part(f: Fields, name: PartName): PartEntry {
  const file = f.string("file");
  if (file !== PART_FILES[name]) throw new Error(`${name}.file must be ${PART_FILES[name]}, not ${JSON.stringify(file.slice(0, 80))}`);
  return { file, bytes: f.count("bytes"), sha256: f.string("sha256", SHA256) };
}

/** The manifest's text as a Manifest, or an error naming the first field that is wrong. */
export function parseManifest(text: string): Manifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`it is not valid JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  if (!isObject(doc)) throw new Error("it is not a JSON object");
  const f = new Fields(doc, "");
  const format = f.string("format");
  if (format !== FORMAT) throw new Error(`format ${JSON.stringify(format.slice(0, 80))} is not ${FORMAT}, the one this version reads`);
  const app = f.string("app");
  if (app !== "probe" && app !== "drupal") throw new Error(`app ${JSON.stringify(app.slice(0, 80))} is neither probe nor drupal`);
  const db = f.object("database");
  const files = f.object("files");
  const share = files.string("share");
  if (share !== "nfs" && share !== "external") throw new Error(`files.share ${JSON.stringify(share.slice(0, 80))} is neither nfs nor external`);
  const toolsRaw = f.object("tools").raw();
  const tools: Record<string, string> = {};
  for (const [k, v] of Object.entries(toolsRaw)) {
    if (typeof v !== "string") throw new Error(`tools.${k} is not a string`);
    tools[k] = v;
  }
  const m: Manifest = {
    format: FORMAT,
    project: f.string("project"),
    stack: f.string("stack"),
    app,
    startedAt: f.string("startedAt", TIME),
    finishedAt: f.string("finishedAt", TIME),
    database: { ...part(db, "database"), name: db.string("name", /^[A-Za-z0-9_]{1,64}$/), host: db.string("host"), command: db.string("command") },
    files: {
      ...part(files, "files"),
      publicPath: files.string("publicPath", /^\/[A-Za-z0-9._/-]*$/),
      share,
      host: files.string("host"),
      fileCount: files.count("fileCount"),
      contentBytes: files.count("contentBytes"),
    },
    tools,
    manifestSha256: f.string("manifestSha256", SHA256),
  };
  const sum = createHash("sha256").update(manifestBody(m)).digest("hex");
  if (sum !== m.manifestSha256)
    throw new Error(`its own checksum does not match (manifestSha256 ${m.manifestSha256}, its content hashes to ${sum}): it was edited or damaged`);
  return m;
}

export interface VerifiedBackup {
  folder: string;
  manifest: Manifest;
  /** Notes that do not stop a restore (a folder others can read). */
  warnings: string[];
}

/** sha256 and size of a file, read as a stream with progress. */
export async function hashFile(file: string, sink: ProgressSink, label: string): Promise<{ bytes: number; sha256: string }> {
  const progress = new Progress(label, sink);
  const meter = new Meter((n) => progress.update(n));
  // Only the meter's count and hash are wanted: the bytes go nowhere.
  await pipeline(fs.createReadStream(file), meter, new Writable({ write: (_chunk, _enc, done) => done() }));
  progress.done(meter.bytes);
  return { bytes: meter.bytes, sha256: meter.sha256() };
}

/**
 * Everything a restore checks before it connects to a host: the manifest's
 * shape and own checksum, then each part's presence, size and sha256.
 * Throws BackupRefused naming the first problem.
 */
export async function verifyBackup(folder: string, sink: ProgressSink): Promise<VerifiedBackup> {
  function refuse(problem: string): never {
    throw new BackupRefused(folder, problem);
  }
  const st = fs.statSync(folder, { throwIfNoEntry: false });
  if (!st) refuse("the folder does not exist");
  if (!st.isDirectory()) refuse("it is not a folder");
  const manifestPath = path.join(folder, MANIFEST_FILE);
  const mst = fs.lstatSync(manifestPath, { throwIfNoEntry: false });
  if (!mst || !mst.isFile()) refuse(`it has no ${MANIFEST_FILE} (a backup that did not finish leaves no folder; this is not one of ours, or it was damaged)`);
  let manifest: Manifest;
  try {
    manifest = parseManifest(fs.readFileSync(manifestPath, "utf8"));
  } catch (e) {
    refuse(`${MANIFEST_FILE}: ${e instanceof Error ? e.message : String(e)}`);
  }
  for (const name of Object.keys(PART_FILES) as PartName[]) {
    const entry = manifest[name];
    const file = path.join(folder, entry.file);
    const fst = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!fst) refuse(`${entry.file} is missing`);
    if (!fst.isFile()) refuse(`${entry.file} is not a regular file`);
    if (fst.size !== entry.bytes) refuse(`${entry.file} is ${fst.size} bytes, the manifest says ${entry.bytes}: it was cut short or changed`);
    const got = await hashFile(file, sink, `checking ${entry.file}`);
    if (got.sha256 !== entry.sha256) refuse(`${entry.file} has sha256 ${got.sha256}, the manifest says ${entry.sha256}: it changed since the backup`);
  }
  const warnings: string[] = [];
  if ((st.mode & 0o077) !== 0)
    warnings.push(
      `the folder ${folder} has mode ${(st.mode & 0o777).toString(8)}: others on this machine can open it; it holds the database content (chmod 700)`,
    );
  return { folder, manifest, warnings };
}
