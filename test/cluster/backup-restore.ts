/**
 * Backup and restore on a real cluster (issue 11): a user logs in through the
 * balancer and uploads a file; the stack is backed up, brought down (hosts,
 * database and the shared files volume all gone) and up again from nothing,
 * then restored. The same browser, with the same cookies, is still logged in
 * to the same session and reads its upload back, through the balancer.
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import { version } from "../../package.json";
import { takeBackup } from "../../scripts/backup/backup";
import { stackAccess } from "../../scripts/backup/cluster";
import { restoreBackup } from "../../scripts/backup/restore";
import { openStack } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { Browser, probePage, request } from "../support/http-client";
import { bringUp, onHost, RunningCluster, tearDown, Variant, variantOverrides } from "../support/local-cluster";
import { newClient } from "./checks";

function cookieHeader(b: Browser): string {
  return [...b.jar].map(([k, v]) => `${k}=${v}`).join("; ");
}

async function readUpload(c: RunningCluster, b: Browser, name: string): Promise<{ status: number; body: string }> {
  const r = await request(`${c.balancerUrl}/files.php?name=${name}`, { headers: { cookie: cookieHeader(b) } });
  return { status: r.status, body: r.body };
}

/**
 * One test, meant to run last before the suite's teardown: its down and up
 * leave the same cluster (same URLs, ports and keys), with the backup's data.
 */
export function registerBackupRestore(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  it("backup, down, up, restore: the login session (same cookie) and an upload are back, through the balancer", async function () {
    const c = get();
    const stackOpts = { baseStack: "dev", overrides: variantOverrides(v) };
    const sink = (line: string): void => log(`${line}\n`);

    // A user: logged in, and an upload in the shared files.
    const { browser } = await newClient(c);
    const login = await browser.post("/login.php", { name: "backup-user", pass: "restored" });
    assert.equal(login.status, 303, `login answered ${login.status}: ${login.body}`);
    const before = probePage(await browser.get("/"));
    assert.equal(before.user, "backup-user");
    const upload = `backup-${Date.now()}.txt`;
    const content = `${randomBytes(24).toString("hex")}\n`;
    const stored = await request(`${c.balancerUrl}/files.php?name=${upload}`, { method: "POST", body: content, headers: { cookie: cookieHeader(browser) } });
    assert.equal(stored.status, 200, stored.body);
    assert.equal((await readUpload(c, browser, upload)).body, content);

    // Backup.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `${v.stack}-backups-`));
    try {
      const b = await takeBackup(await stackAccess(v.stack, stackOpts), { root, sink, version });
      const m = b.manifest;
      recordFigure(`${v.stack}: backup (probe app's data), s`, b.seconds);
      recordFigure(`${v.stack}: backup size, database.sql.gz, KiB`, m.database.bytes / 1024);
      recordFigure(`${v.stack}: backup size, files.tar, KiB`, m.files.bytes / 1024);
      assert.equal(m.stack, v.stack);
      assert.equal(fs.statSync(b.folder).mode & 0o777, 0o700);
      for (const f of fs.readdirSync(b.folder)) assert.equal(fs.statSync(path.join(b.folder, f)).mode & 0o777, 0o600, `${f} is not 0600`);
      // No secret of the stack in the folder, the database content included (the probe app keeps none there).
      const { stack } = await openStack(v.stack, { ...stackOpts, skipPayloadCheck: true });
      const texts = [
        fs.readFileSync(path.join(b.folder, "manifest.json"), "latin1"),
        fs.readFileSync(path.join(b.folder, "files.tar"), "latin1"),
        gunzipSync(fs.readFileSync(path.join(b.folder, "database.sql.gz"))).toString("latin1"),
      ];
      assert.ok(texts[2].includes(before.session), "the login's session row is not in the dump");
      // Every secret of the stack, whatever secrets it has by now.
      const secrets = Object.entries(await stack.getAllConfig()).filter(([, c]) => c.secret);
      assert.ok(secrets.length >= 4, `only ${secrets.length} secrets found in the stack's config`);
      for (const [key, { value }] of secrets) {
        const probe = value.includes("PRIVATE KEY") ? value.split("\n")[1] : value;
        for (const t of texts) assert.ok(!t.includes(probe), `${key} is in the backup folder`);
      }

      // Everything gone, then a cluster from nothing: no login, no upload.
      await tearDown(v, log);
      const t0 = Date.now();
      await bringUp(v, log);
      recordFigure(`${v.stack}: up from nothing before the restore, s`, (Date.now() - t0) / 1000);
      // Asked with a copy of the browser: the new cluster may hand out new cookies, and the user's own must stay as they were.
      const probe = new Browser(c.balancerUrl);
      for (const [k, val] of browser.jar) probe.jar.set(k, val);
      assert.equal(probePage(await probe.get("/")).user, null, "the new cluster still knew the login before the restore");
      assert.equal((await readUpload(c, probe, upload)).status, 404, "the new cluster still had the upload before the restore");

      // Restore, then the same browser.
      const r = await restoreBackup(b.folder, () => stackAccess(v.stack, stackOpts), { sink });
      recordFigure(`${v.stack}: restore (probe app's data), s`, r.seconds);
      assert.deepEqual(r.warnings, []);
      const after = probePage(await browser.get("/"));
      assert.equal(after.user, "backup-user", "the login is not back");
      assert.equal(after.session, before.session, "not the same session");
      assert.equal(after.visits, before.visits + 1, "the session's visit counter is not the backed-up one");
      const back = await readUpload(c, browser, upload);
      assert.equal(back.status, 200, back.body);
      assert.equal(back.body, content, "the upload came back changed");
      // As the web server wrote it: owned by www-data, so the site can change it.
      const filesHost = c.model.files.share === "nfs" ? "data" : c.model.web[0].host.name;
      const owner = onHost(c.model, filesHost, `stat -c %U ${c.model.files.publicPath}/${upload} ${c.model.files.publicPath}`);
      assert.equal(owner.out, "www-data\nwww-data", owner.out);
      // Nothing of the restore's staging left behind.
      const dbs = onHost(c.model, "data", `mariadb -N -B -e "SHOW DATABASES LIKE 'drupal\\_cluster\\_%'"`);
      assert.deepEqual([dbs.code, dbs.out], [0, ""], `the restore left its staging databases behind: ${dbs.out}`);
      const dirs = onHost(c.model, filesHost, `ls -A ${c.model.files.publicPath}`);
      assert.ok(!/\.drupal-cluster-restore/.test(dirs.out), `the restore left its staging folders behind: ${dirs.out}`);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
}
