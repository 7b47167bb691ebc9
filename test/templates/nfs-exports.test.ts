/**
 * The NFS export of the shared files on scale-out and scale-in (issue 16): a web
 * server added is let in before the web servers change (widen), a removed one
 * keeps its access until the balancers have drained and dropped it (narrow,
 * after them), so the clients it still serves keep their files. The rendered
 * script run for real locally (sh, its paths moved into a temporary folder,
 * `service` and `exportfs` stand-ins that record their calls).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NFS_EXPORTS } from "../../infra/payload/data";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload, ProvisionStep } from "../../infra/payload/types";
import { ARTIFACTS, model, SECRETS, sshValues } from "../support/cluster-configs";
import { fileOf, host } from "../support/payloads";

function data(webCount: number): HostPayload {
  return host(buildPayloads(model(sshValues({ webCount, share: "nfs" })), SECRETS, ARTIFACTS), "data");
}

function stepOf(steps: ProvisionStep[] | undefined, name: string): ProvisionStep {
  const s = (steps ?? []).find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name}`);
  return s;
}

const OPTIONS = "(rw,sync,no_subtree_check,root_squash)";

describe("templates: the NFS export follows the web list, widened before and narrowed after the balancers", function () {
  let dir = "";
  let env: NodeJS.ProcessEnv = {};
  const exportsFile = (): string => path.join(dir, "exports");
  const ledger = (): string => path.join(dir, "ledger");
  const former = (): string => path.join(dir, "former.exports");

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nfs-exports-"));
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    // The server runs when NFS_RUNNING is 1; exportfs records each call.
    fs.writeFileSync(path.join(bin, "service"), '#!/bin/sh\n[ "$NFS_RUNNING" = 1 ]\n', { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "exportfs"), `#!/bin/sh\necho "exportfs $*" >>${dir}/calls\n`, { mode: 0o755 });
    env = { PATH: `${bin}:/usr/bin:/bin`, NFS_RUNNING: "1" };
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The script of a payload with `webCount` web servers, its paths in the temporary folder. */
  function script(webCount: number): string {
    const text = fileOf(data(webCount), NFS_EXPORTS)
      .content.replace(/^EXPORTS=.*$/m, `EXPORTS=${exportsFile()}`)
      .replace(/^LEDGER=.*$/m, `LEDGER=${ledger()}`)
      .replace(/^FORMER=.*$/m, `FORMER=${former()}`)
      .replace("mkdir -p /etc/exports.d ", "mkdir -p ");
    assert.doesNotMatch(text, /\/etc\/exports|\/var\/lib/, "a host path is left in the sandboxed script");
    const p = path.join(dir, `nfs-exports-${webCount}`);
    fs.writeFileSync(p, text, { mode: 0o755 });
    return p;
  }

  const run = (s: string, action: string): { status: number | null; out: string } => {
    const r = spawnSync(s, [action], { env, encoding: "utf8" });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  const clients = (): string[] => [...fs.readFileSync(exportsFile(), "utf8").matchAll(/ (\S+?)\(rw,sync,no_subtree_check,root_squash\)/g)].map((m) => m[1]);

  it("is a script the payload runs as a step before the web servers and one after the balancers, each checked by refresh", () => {
    const p = data(2);
    assert.equal(fileOf(p, NFS_EXPORTS).mode, "0755");
    const widen = stepOf(p.configure, "nfs-exports-widen");
    assert.equal(widen.run, `${NFS_EXPORTS} widen`);
    assert.equal(widen.check, `${NFS_EXPORTS} check-widened`);
    const narrow = stepOf(p.afterBalancers, "nfs-exports-narrow");
    assert.equal(narrow.run, `${NFS_EXPORTS} narrow`);
    assert.equal(narrow.check, `${NFS_EXPORTS} check-narrowed`);
    assert.ok(!p.files.some((f) => f.path.startsWith("/etc/exports.d/")), "the exports file is the script's, not a file of the payload");
    // Not the path of the static file of versions before: the up that brings the script deletes that file at its end.
    assert.match(fileOf(p, NFS_EXPORTS).content, /^EXPORTS=\/etc\/exports\.d\/drupal-cluster-files\.exports$/m);
    assert.match(fileOf(p, NFS_EXPORTS).content, /^FORMER=\/etc\/exports\.d\/drupal-cluster\.exports$/m);
  });

  it("3 -> 2: lb3 keeps its access through the widen and loses it at the narrow; 2 -> 3: let in at the widen; a running server is told each time", () => {
    const three = script(3);
    const two = script(2);
    // A cluster made before: its static exports file is there, and goes once the script wrote its own.
    fs.writeFileSync(former(), "/srv/drupal-files 10.0.0.11(rw,sync,no_subtree_check,root_squash)\n");
    assert.equal(run(three, "widen").status, 0);
    assert.ok(!fs.existsSync(former()), "the former exports file is left beside the new one (two entries for one path)");
    assert.deepEqual(clients(), ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    assert.ok(
      fs
        .readFileSync(exportsFile(), "utf8")
        .split("\n")
        .includes(`/srv/drupal-files ${["11", "12", "13"].map((n) => `10.0.0.${n}${OPTIONS}`).join(" ")}`),
    );
    assert.equal(run(three, "narrow").status, 0);
    assert.equal(run(three, "check-narrowed").status, 0);

    // The stack drops lb3: before the balancers, it is still let in.
    assert.equal(run(two, "check-widened").status, 0);
    assert.equal(run(two, "check-narrowed").status, 1, "narrowed although lb3 is still exported to");
    assert.equal(run(two, "widen").status, 0);
    assert.deepEqual(clients(), ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    // After the balancers.
    assert.equal(run(two, "narrow").status, 0);
    assert.deepEqual(clients(), ["10.0.0.11", "10.0.0.12"]);
    assert.equal(run(two, "check-narrowed").status, 0);
    assert.equal(run(two, "narrow").status, 0, "narrow again (idempotent)");
    assert.deepEqual(clients(), ["10.0.0.11", "10.0.0.12"]);

    // And back: lb3 is let in before it mounts.
    assert.equal(run(three, "check-widened").status, 1);
    assert.equal(run(three, "widen").status, 0);
    assert.deepEqual(clients(), ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    assert.equal(fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n").length, 6, "exportfs -ra after each write");
  });

  it("a server that is not running yet is not told (it reads the file when it starts); a hand edit of the file fails the narrow check; a forged ledger line never reaches the file", () => {
    const two = script(2);
    env.NFS_RUNNING = "0";
    assert.equal(run(two, "widen").status, 0);
    assert.ok(!fs.existsSync(path.join(dir, "calls")), "exportfs ran although the server does not run");
    assert.equal(run(two, "narrow").status, 0);
    fs.appendFileSync(exportsFile(), "/ *(rw,no_root_squash)\n");
    assert.equal(run(two, "check-narrowed").status, 1, "a hand edit passed the check");
    fs.appendFileSync(ledger(), "10.0.0.9(rw,no_root_squash)\n* \n");
    const w = run(two, "widen");
    assert.equal(w.status, 0, w.out);
    assert.match(w.out, /ledger line not used: 10\.0\.0\.9\(rw,no_root_squash\)/);
    assert.deepEqual(clients(), ["10.0.0.11", "10.0.0.12"]);
    assert.doesNotMatch(fs.readFileSync(exportsFile(), "utf8"), /no_root_squash|\*/);
  });
});
