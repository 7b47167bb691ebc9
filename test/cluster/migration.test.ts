/**
 * A stack made by the ssh target's former dynamic resources (the code of
 * commit LEGACY, the last before the provider plugin, run from a git worktree
 * with its own node_modules, toolchain links and state backend) moves to the
 * plugin with `migrate`: no file on the hosts is rewritten for the move, no
 * service restarted, and the next up's refresh finds everything in place.
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { DriftReport } from "../../scripts/drift-report";
import { cleanup, down, migrate, upWithSummary } from "../../scripts/stack";
import { pulumiVersion } from "../../scripts/toolchain";
import { containerName } from "../../scripts/local-hosts";
import { leftovers, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { modelFromStackFile } from "../../infra/config/stack-file";
import { PROXY_NODE_BIN } from "../../infra/payload/balancer";
import { allHosts } from "../../infra/model/types";
import { checkSticky } from "./checks";
import { recordFigure } from "../support/figures";

const LEGACY = "d5e9580";
const V: Variant = { stack: "ci-legacy", portOffset: 1300, subnet: 64 };

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) failed:\n${`${r.stdout}${r.stderr}`.slice(-3000)}`);
  return r.stdout;
}

/** Every file of ours on each host as "mtime sha256", and apache2's and MariaDB's process ids. */
function snapshot(c: RunningCluster): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of allHosts(c.model)) {
    const script =
      "find /etc/apache2 /etc/mysql/mariadb.conf.d /etc/drupal-cluster /var/www/probe /etc/proxy-node /opt/proxy-node /usr/local/sbin -type f 2>/dev/null | sort |" +
      ' while read -r f; do echo "$f $(stat -c %Y "$f")-$(sha256sum < "$f" | cut -c1-16)"; done;' +
      " echo apache2 $(pgrep -o apache2); echo mariadbd $(pgrep -o mariadbd)";
    for (const line of sh("docker", ["exec", containerName(c.model, h), "sh", "-c", script], REPO_ROOT)
      .trim()
      .split("\n")) {
      const i = line.lastIndexOf(" ");
      out.set(`${h.name} ${line.slice(0, i)}`, line.slice(i + 1));
    }
  }
  return out;
}

const hashOf = (v: string | undefined): string | undefined => v?.split("-")[1];

describe(`migration: a stack made by the dynamic resources of ${LEGACY} moves to the provider plugin`, function () {
  this.timeout(20 * 60 * 1000);
  const worktree = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-legacy-"));
  const savedEnv = { backend: process.env.PULUMI_BACKEND_URL, pass: process.env.PULUMI_CONFIG_PASSPHRASE_FILE };
  let cluster: RunningCluster | undefined;

  before(async function () {
    if (!pulumiVersion()) throw new Error("the Pulumi CLI is missing (.tools/bin/pulumi): run scripts/bootstrap");
    // Fails loudly on a clone without history: the old code is what this test is about.
    sh("git", ["worktree", "add", "--detach", "--force", worktree, LEGACY], REPO_ROOT);
    const t0 = Date.now();
    // Its own host image tag: the old recipe must not replace the image this checkout's hosts use.
    const legacyEnv = { ...process.env, DRUPAL_CLUSTER_HOST_IMAGE: "drupal-cluster/host:legacy" };
    sh("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], worktree);
    sh("scripts/bootstrap", [], worktree, legacyEnv);
    sh("npx", ["ts-node", "-T", "-e", `require("./test/support/local-cluster").bringUp(${JSON.stringify(V)})`], worktree, legacyEnv);
    recordFigure(`${V.stack}: the ${LEGACY} worktree (npm ci, bootstrap) and its pulumi up, s`, (Date.now() - t0) / 1000);
    // A teammate's view of that stack: its backend, passphrase, config and SSH key.
    process.env.PULUMI_BACKEND_URL = `file://${path.join(worktree, ".pulumi-state")}`;
    process.env.PULUMI_CONFIG_PASSPHRASE_FILE = path.join(worktree, ".secrets", "passphrase");
    fs.cpSync(path.join(worktree, ".pulumi-work", V.stack), path.join(REPO_ROOT, ".pulumi-work", V.stack), { recursive: true });
    for (const f of fs.readdirSync(path.join(worktree, ".secrets")).filter((n) => n.startsWith(V.stack))) {
      fs.cpSync(path.join(worktree, ".secrets", f), path.join(REPO_ROOT, ".secrets", f));
    }
    const model = modelFromStackFile(V.stack, variantOverrides(V), "dev");
    cluster = { model, balancerUrl: `http://127.0.0.1:${8080 + V.portOffset}`, managerUrl: "", webUrls: {}, upSeconds: 0 };
  });

  after(async function () {
    try {
      if (leftovers(V.stack).length > 0)
        await down(V.stack, { baseStack: "dev", overrides: variantOverrides(V), onOutput: () => undefined }).catch(() => cleanup(V.stack));
    } finally {
      process.env.PULUMI_BACKEND_URL = savedEnv.backend;
      process.env.PULUMI_CONFIG_PASSPHRASE_FILE = savedEnv.pass;
      if (savedEnv.backend === undefined) delete process.env.PULUMI_BACKEND_URL;
      if (savedEnv.pass === undefined) delete process.env.PULUMI_CONFIG_PASSPHRASE_FILE;
      for (const f of fs.readdirSync(path.join(REPO_ROOT, ".secrets")).filter((n) => n.startsWith(V.stack)))
        fs.rmSync(path.join(REPO_ROOT, ".secrets", f), { recursive: true, force: true });
      fs.rmSync(path.join(REPO_ROOT, ".pulumi-work", V.stack), { recursive: true, force: true });
      spawnSync("git", ["worktree", "remove", "--force", worktree], { cwd: REPO_ROOT });
      fs.rmSync(worktree, { recursive: true, force: true });
      spawnSync("git", ["worktree", "prune"], { cwd: REPO_ROOT });
    }
    assert.deepEqual(leftovers(V.stack), [], `stack ${V.stack} left things behind`);
  });

  const get = (): RunningCluster => {
    if (!cluster) throw new Error("the legacy cluster did not come up");
    return cluster;
  };

  it("migrate moves every resource without touching the hosts' files; the next up's refresh finds everything in place", async () => {
    const statePath = path.join(worktree, ".pulumi-state", ".pulumi", "stacks", "drupal-cluster", `${V.stack}.json`);
    assert.match(fs.readFileSync(statePath, "utf8"), /pulumi-nodejs:dynamic\/drupal-cluster:RemoteFile/, "the old code did not make dynamic resources");
    const before = snapshot(get());
    const said = await migrate(V.stack, { baseStack: "dev", overrides: variantOverrides(V) });
    assert.match(said, /\d+ resources moved to the drupal-cluster provider/);
    assert.deepEqual(
      [...snapshot(get())].filter(([k, v]) => before.get(k) !== v),
      [],
      "migrate changed something on the hosts",
    );
    const state = fs.readFileSync(statePath, "utf8");
    assert.ok(!state.includes("pulumi-nodejs"), "the migrated state still holds dynamic resources");
    assert.ok(!state.includes(worktree), "the migrated state still holds the old checkout's path");
    const migrated = new Set(
      (JSON.parse(state) as { checkpoint: { latest: { resources: Array<{ urn: string }> } } }).checkpoint.latest.resources.map((x) => x.urn),
    );

    const drift = new DriftReport();
    const changed: string[] = [];
    const onEvent = (e: EngineEvent): void => {
      drift.onEvent(e);
      const m = e.resourcePreEvent?.metadata;
      if (m && ["create", "delete", "replace", "create-replacement", "delete-replaced"].includes(m.op)) changed.push(`${m.op} ${m.urn}`);
    };
    const t0 = Date.now();
    await upWithSummary(V.stack, { baseStack: "dev", overrides: variantOverrides(V), onOutput: () => undefined, onEvent, skipPayloadCheck: true });
    recordFigure(`${V.stack}: first up after migrate, s`, (Date.now() - t0) / 1000);
    assert.deepEqual(drift.found, [], "the first refresh after migrate found differences");
    // Only what the newer version adds (files it renders that the old one did not) is created; nothing migrated is replaced or
    // deleted, but for proxy-node's former code, one file per module under /opt/proxy-node/dist, which its one bin replaces.
    const formerCode = (c: string): boolean => c.startsWith("delete ") && c.includes(":/opt/proxy-node/dist/");
    assert.deepEqual(
      changed.filter((c) => (!c.startsWith("create ") || migrated.has(c.slice("create ".length))) && !formerCode(c)),
      [],
      "the first up after migrate replaced or deleted what was migrated",
    );
    // What the newer version renders differently (proxy-node's code) is rewritten;
    // nothing else is, apache2 and MariaDB keep running, and nothing of ours is backed up as foreign.
    const after = snapshot(get());
    // Except the web servers' Apache: this version adds their prefork limits (php.workers: ServerLimit),
    // which only a restart applies, so it restarts there once (rolled, one web server at a time).
    const newLimits = new Set(get().model.web.map((w) => `${w.host.name} apache2`));
    const needless = [...after]
      .filter(([k, v]) => before.has(k) && before.get(k) !== v && hashOf(before.get(k)) === hashOf(v) && !newLimits.has(k))
      .map(([k]) => k);
    assert.deepEqual(needless, [], "rewritten with the same content, or a service restarted, after migrate");
    const backups = [...after.keys()].filter((k) => !before.has(k) && k.endsWith(".drupal-cluster-orig"));
    assert.deepEqual(backups, [], "our own files were backed up as if they were not ours");
    assert.ok(
      [...after].some(([k, v]) => k.includes(PROXY_NODE_BIN) && hashOf(before.get(k)) !== hashOf(v)),
      "proxy-node's changed code was not delivered",
    );
    assert.deepEqual(
      [...after.keys()].filter((k) => k.includes("/opt/proxy-node/dist/")),
      [],
      "proxy-node's former per-module files were left on the balancer",
    );
    await checkSticky(get(), 10);
  });

  it("the migrated stack is destroyed by the provider plugin, leaving nothing", async () => {
    await down(V.stack, { baseStack: "dev", overrides: variantOverrides(V), onOutput: () => undefined });
    assert.deepEqual(leftovers(V.stack), []);
  });
});
