/**
 * Backup and restore without a cluster: stand-in hosts answer the scripts.
 * What matters here is what happens before anything is sent: a backup whose
 * bytes differ from its manifest in any way is refused, naming the problem,
 * before a host is even connected to; and a backup that fails leaves no folder.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClusterAccess } from "../../scripts/backup/access";
import { takeBackup } from "../../scripts/backup/backup";
import { BackupRefused, MANIFEST_FILE, parseManifest, sealManifest, verifyBackup } from "../../scripts/backup/manifest";
import { Remote, RemoteIo, RemoteResult } from "../../scripts/backup/remote";
import { restoreBackup, RestoreFailed, swapDatabaseSql } from "../../scripts/backup/restore";

interface Answer {
  code?: number;
  stdout?: Buffer | string;
  stderr?: string;
}

/** A host that records every script and its stdin, and answers what `answer` says. */
class FakeHost implements Remote {
  readonly runs: Array<{ script: string; stdin: Buffer }> = [];
  constructor(
    readonly label: string,
    private readonly answer: (script: string) => Answer,
  ) {}

  async run(script: string, io: RemoteIo = {}): Promise<RemoteResult> {
    const chunks: Buffer[] = [];
    if (io.stdin) for await (const c of io.stdin) chunks.push(Buffer.from(c as Buffer));
    this.runs.push({ script, stdin: Buffer.concat(chunks) });
    const a = this.answer(script);
    const out = a.stdout ?? "";
    const stdout = io.stdout;
    if (stdout) await new Promise<void>((resolve) => stdout.end(out, () => resolve()));
    return { code: a.code ?? 0, stdout: stdout ? "" : String(out), stderr: a.stderr ?? "" };
  }
}

const DUMP = Buffer.from("-- a gzip'd dump stands in here\n".repeat(2000));
const TAR = Buffer.alloc(20480, 7);

function dataAnswers(over: Partial<Record<"dump", Answer>> = {}): (s: string) => Answer {
  return (s) => {
    if (s.includes("mariadb-dump --version")) return { stdout: "mariadb-dump=mariadb-dump from 10.11\ngzip=gzip 1.12\nserver=10.11.6-MariaDB\nexists=1\n" };
    if (s.startsWith("mariadb-dump ")) return over.dump ?? { stdout: DUMP };
    return {};
  };
}

function filesAnswers(s: string): Answer {
  if (s.includes("tar --version")) return { stdout: "tar=tar (GNU tar) 1.34\nfileCount=1\ncontentBytes=11\nmounted=yes\n" };
  if (s.includes("tar --create")) return { stdout: TAR };
  return {};
}

function access(data: Remote, files: Remote, stack = "ci-unit"): ClusterAccess {
  return {
    project: "drupal-cluster",
    stack,
    app: "probe",
    database: "drupal",
    data: { host: "data", remote: data },
    files: { publicPath: "/srv/drupal-files", share: "external", host: "lb1", remote: files },
  };
}

const quiet = (): void => undefined;

describe("backup and restore: the backup folder and its manifest", () => {
  let root: string;
  let folder: string;

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "backup-unit-"));
    const r = await takeBackup(access(new FakeHost("data", dataAnswers()), new FakeHost("lb1", filesAnswers)), { root, sink: quiet, version: "0.1.0" });
    folder = r.folder;
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it("writes the parts as streamed, a manifest with sizes and sha256 checksums, folder 0700 and files 0600", async () => {
    assert.deepEqual(fs.readdirSync(root), [path.basename(folder)], "only the finished folder is left in the root");
    assert.match(path.basename(folder), /^ci-unit-\d{8}T\d{6}Z$/);
    assert.equal(fs.statSync(folder).mode & 0o777, 0o700);
    for (const f of fs.readdirSync(folder)) assert.equal(fs.statSync(path.join(folder, f)).mode & 0o777, 0o600, f);
    assert.deepEqual(fs.readFileSync(path.join(folder, "database.sql.gz")), DUMP);
    assert.deepEqual(fs.readFileSync(path.join(folder, "files.tar")), TAR);
    const m = parseManifest(fs.readFileSync(path.join(folder, MANIFEST_FILE), "utf8"));
    assert.equal(m.stack, "ci-unit");
    assert.equal(m.database.bytes, DUMP.length);
    assert.equal(m.files.bytes, TAR.length);
    assert.match(m.database.sha256, /^[0-9a-f]{64}$/);
    assert.equal(m.tools["mariadb server"], "10.11.6-MariaDB");
    assert.equal(m.tools.tar, "tar (GNU tar) 1.34");
    assert.match(m.database.command, /mariadb-dump .*--single-transaction/);
    const v = await verifyBackup(folder, quiet);
    assert.deepEqual(v.warnings, []);
  });

  it("a backup that fails halfway removes its partial folder", async () => {
    const root2 = fs.mkdtempSync(path.join(os.tmpdir(), "backup-unit-"));
    try {
      const failing = new FakeHost(
        "data",
        dataAnswers({ dump: { code: 2, stdout: DUMP.subarray(0, 5000), stderr: "mariadb-dump: Got error: 2013: Lost connection" } }),
      );
      await assert.rejects(
        takeBackup(access(failing, new FakeHost("lb1", filesAnswers)), { root: root2, sink: quiet, version: "0.1.0" }),
        /mariadb-dump on data exited 2:\nmariadb-dump: Got error: 2013.*partial folder .* was removed/s,
      );
      assert.deepEqual(fs.readdirSync(root2), [], "the failed backup left something behind");
    } finally {
      fs.rmSync(root2, { recursive: true, force: true });
    }
  });

  /** Restores with hosts that fail the test if anything at all is asked of them. */
  async function refusedBeforeAnythingIsSent(expected: RegExp): Promise<void> {
    let connected = false;
    await assert.rejects(
      restoreBackup(
        folder,
        async () => {
          connected = true;
          throw new Error("connected to the cluster");
        },
        { sink: quiet },
      ),
      (e: unknown) => {
        assert.ok(e instanceof BackupRefused, `not a refusal: ${String(e)}`);
        assert.match(e.message, expected);
        assert.match(e.message, /Nothing was changed\.$/);
        return true;
      },
    );
    assert.equal(connected, false, "the restore connected to the cluster before it had checked the backup");
  }

  function flipByte(file: string, at: number): void {
    const p = path.join(folder, file);
    const b = fs.readFileSync(p);
    b[at] ^= 0x01;
    fs.writeFileSync(p, b);
  }

  it("a changed byte in the database dump is refused before anything is sent", async () => {
    flipByte("database.sql.gz", 1234);
    await refusedBeforeAnythingIsSent(/database\.sql\.gz has sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}: it changed since the backup/);
  });

  it("a changed byte in the files archive is refused before anything is sent", async () => {
    flipByte("files.tar", TAR.length - 1);
    await refusedBeforeAnythingIsSent(/files\.tar has sha256 .* it changed since the backup/);
  });

  it("a changed byte in the manifest itself (another stack name) is refused before anything is sent", async () => {
    const p = path.join(folder, MANIFEST_FILE);
    fs.writeFileSync(p, fs.readFileSync(p, "utf8").replace('"stack": "ci-unit"', '"stack": "ci-unis"'));
    await refusedBeforeAnythingIsSent(/manifest\.json: its own checksum does not match/);
  });

  it("a part cut short, a missing part, a missing or broken manifest, and a part named outside the folder are each refused by name", async () => {
    const dump = path.join(folder, "database.sql.gz");
    fs.truncateSync(dump, 100);
    await refusedBeforeAnythingIsSent(/database\.sql\.gz is 100 bytes, the manifest says \d+: it was cut short/);
    fs.rmSync(dump);
    await refusedBeforeAnythingIsSent(/database\.sql\.gz is missing/);
    const mp = path.join(folder, MANIFEST_FILE);
    const text = fs.readFileSync(mp, "utf8");
    fs.writeFileSync(mp, text.slice(0, 50));
    await refusedBeforeAnythingIsSent(/manifest\.json: it is not valid JSON/);
    const m = JSON.parse(text) as ReturnType<typeof parseManifest>;
    const { manifestSha256: _drop, ...rest } = m;
    fs.writeFileSync(mp, JSON.stringify(sealManifest({ ...rest, files: { ...rest.files, file: "../../etc/passwd" } })));
    await refusedBeforeAnythingIsSent(/files\.file must be files\.tar, not "\.\.\/\.\.\/etc\/passwd"/);
    fs.rmSync(mp);
    await refusedBeforeAnythingIsSent(/it has no manifest\.json/);
    fs.rmSync(folder, { recursive: true });
    await refusedBeforeAnythingIsSent(/the folder does not exist/);
  });

  it("a backup of another stack is refused before any host is asked anything, unless --allow-other-stack", async () => {
    const data = new FakeHost("data", () => ({}));
    const files = new FakeHost("lb1", () => ({}));
    await assert.rejects(
      restoreBackup(folder, async () => access(data, files, "ci-other"), { sink: quiet }),
      /a backup of stack ci-unit and this is stack ci-other .*--allow-other-stack.*Nothing was changed/s,
    );
    assert.equal(data.runs.length + files.runs.length, 0);
    await restoreBackup(folder, async () => access(data, files, "ci-other"), { sink: quiet, allowOtherStack: true });
    assert.ok(data.runs.length > 0);
  });

  it("stages both parts, then swaps the database in one RENAME TABLE, then the files, then removes what was there", async () => {
    const data = new FakeHost("data", () => ({}));
    const files = new FakeHost("lb1", () => ({}));
    const r = await restoreBackup(folder, async () => access(data, files), { sink: quiet });
    assert.equal(r.bytesSent, DUMP.length + TAR.length);
    const load = data.runs.find((x) => x.script.includes("gunzip -c |"));
    assert.deepEqual(load?.stdin, DUMP, "the dump was not sent whole");
    assert.deepEqual(files.runs.find((x) => x.script.includes("tar --extract"))?.stdin, TAR, "the archive was not sent whole");
    const swap = data.runs.find((x) => x.stdin.toString().includes("RENAME TABLE"));
    assert.ok(swap, "no swap");
    assert.equal(swap.stdin.toString(), swapDatabaseSql("drupal"));
    const dataSteps = data.runs.map((x) =>
      x.stdin.toString().includes("RENAME TABLE")
        ? "swap"
        : x.script.includes("gunzip -c")
          ? "stage"
          : x.script.includes("drupal_cluster_pre_restore")
            ? "drop-old"
            : "check",
    );
    assert.deepEqual(dataSteps, ["check", "stage", "swap", "drop-old"]);
    const fileSteps = files.runs.map((x) =>
      x.script.includes("tar --extract") ? "stage" : x.script.includes('mv -t "$p"') ? "swap" : x.script.startsWith("rm -rf") ? "drop-old" : "check",
    );
    assert.deepEqual(fileSteps, ["check", "stage", "swap", "drop-old"]);
  });

  it("a failure while staging leaves the live data untouched and says so, with the command to retry", async () => {
    const data = new FakeHost("data", (s) =>
      s.includes("gunzip -c |") ? { code: 1, stderr: "ERROR 1064 (42000) at line 3: You have an error in your SQL syntax" } : {},
    );
    const files = new FakeHost("lb1", () => ({}));
    await assert.rejects(
      restoreBackup(folder, async () => access(data, files), { sink: quiet, retryCommand: "RETRY" }),
      (e: unknown) => {
        assert.ok(e instanceof RestoreFailed);
        assert.match(e.message, /while staging .*ERROR 1064.*State: nothing was changed.*To retry \(it starts over\): RETRY/s);
        return true;
      },
    );
    assert.equal(data.runs.filter((x) => x.stdin.toString().includes("RENAME TABLE")).length, 0, "the database was swapped after a failed staging");
    assert.ok(
      data.runs.some((x) => x.script.includes("DROP DATABASE IF EXISTS `drupal_cluster_restore`")),
      "the staging database was not dropped",
    );
  });

  it("a failure while swapping the files says the database is the backup's and where each set of files is", async () => {
    const data = new FakeHost("data", () => ({}));
    const files = new FakeHost("lb1", (s) => (s.includes('mv -t "$p"') ? { code: 1, stderr: "mv: cannot move: No space left on device" } : {}));
    await assert.rejects(
      restoreBackup(folder, async () => access(data, files), { sink: quiet, retryCommand: "RETRY" }),
      /State: the database is the backup's; the shared files may be partly the backup's: .*\.drupal-cluster-restore-stage.*\.drupal-cluster-restore-old.*To retry \(it starts over\): RETRY/s,
    );
  });
});

describe("backup and restore: the database swap", () => {
  it("moves the live tables aside and the staged ones in, in that order, in one statement built in the same session", () => {
    const s = swapDatabaseSql("drupal");
    assert.match(s, /GROUP_CONCAT\(r ORDER BY k, n SEPARATOR ', '\)/);
    assert.match(s, /SELECT 1 AS k, .*TABLE_SCHEMA = 'drupal' UNION ALL SELECT 2 AS k, .*TABLE_SCHEMA = 'drupal_cluster_restore'/);
    assert.match(s, /PREPARE swap FROM @swap;\nEXECUTE swap;/);
  });
});
