/**
 * The cluster proven for real: local Debian hosts, then a real `pulumi up`
 * (Automation API, local file backend) that provisions them over SSH, exactly as
 * prod's servers are provisioned; then the checks a user would make.
 * Each topology is its own throwaway stack (never the developer's `dev`).
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { bringUp, leftovers, onHost, RunningCluster, tearDown, Variant, variantOverrides } from "../support/local-cluster";
import { openStack, upWithSummary } from "../../scripts/stack";
import { pulumiVersion } from "../../scripts/toolchain";
import { checkFailover, checkSessionsInDatabase, checkSpread, checkSticky, ManagerOps, newClient, pinnedClientReaches } from "./checks";
import { driftAndRepair, inSecondClone, rebootWithSystemd, replaceHostKey, restoreHostKey } from "./delivery";
import { assertFaultBounds, Fault, faultUnderLoad } from "./faults";
import { registerUserChecks } from "./user-checks";
import { registerCronChecks } from "./cron";
import { apacheManager, proxyNodeManager } from "./managers";
import { recordFigure } from "../support/figures";
import { registerBackupRestore } from "./backup-restore";
import { registerPairChecks } from "./pair-checks";
import { registerBalancerChangeUnderLoad, registerCodeChangeUnderLoad, registerEngineSwitchUnderLoad } from "./changes";
import { registerRollingChecks, registerRollingRestartCheck } from "./rolling";
import { registerScaleChecks } from "./scale";

/** Everything the engine printed, kept to check that no secret shows up in it. */
let engineLog = "";
const log = (s: string): void => {
  engineLog += s;
  if (process.env.DRUPAL_CLUSTER_VERBOSE) process.stdout.write(s);
};

/** The local file backend's files for one stack: checkpoint, backups, history. */
function stateFiles(stack: string): string[] {
  const root = path.join(REPO_ROOT, ".pulumi-state", ".pulumi");
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (full.includes(`/${stack}`) && e.name.endsWith(".json")) out.push(full);
    }
  };
  walk(root);
  return out;
}

/** Abrupt losses of lb1 under load, each followed by its return (issue 13). */
function registerFaultChecks(v: Variant, get: () => RunningCluster): void {
  for (const fault of ["kill", "pause", "disconnect"] as Fault[]) {
    it(`loses lb1 abruptly (docker ${fault === "disconnect" ? "network disconnect" : fault}) under load: bounded waits, no failed request it could avoid, lb1 back by itself`, async () => {
      const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), skipPayloadCheck: true });
      const token = (await stack.getConfig("drupal-cluster:managerToken")).value;
      const r = await faultUnderLoad(get(), token, fault);
      const name = `${v.stack}: ${fault}`;
      recordFigure(`${name}: requests sent`, r.sent);
      recordFigure(`${name}: requests failed`, r.failed);
      recordFigure(`${name}: longest request, s`, r.longestMs / 1000);
      recordFigure(`${name}: longest request sent after the fault, s`, r.longestAfterFaultMs / 1000);
      recordFigure(`${name}: detected after, s`, r.detectedAfterS);
      recordFigure(`${name}: serves its own clients again after, s`, r.readmittedAfterS);
      assertFaultBounds(get(), r);
    });
  }
}

function requireToolchain(): void {
  // Fails loudly: without the CLI this path cannot run, and skipping would hide it.
  if (!pulumiVersion()) throw new Error("the Pulumi CLI is missing (.tools/bin/pulumi): run scripts/bootstrap");
}

function clusterSuite(title: string, v: Variant, body: (get: () => RunningCluster, manager: () => Promise<ManagerOps>) => void): void {
  describe(title, function () {
    this.timeout(20 * 60 * 1000);
    let cluster: RunningCluster | undefined;
    let tornDown = false;

    before(async function () {
      requireToolchain();
      await tearDown(v).catch(() => undefined); // leftovers of a crashed run
      cluster = await bringUp(v, log);
      recordFigure(`${v.stack}: pulumi up from nothing (hosts + provisioning), s`, cluster.upSeconds);
    });

    after(async function () {
      // Runs also when a check failed halfway: nothing may stay behind
      // (DRUPAL_CLUSTER_KEEP=1 keeps the cluster for a post-mortem).
      if (process.env.DRUPAL_CLUSTER_KEEP) return;
      if (!tornDown) await tearDown(v, log).catch((e) => console.error(`teardown of ${v.stack}: ${e}`));
      assert.deepEqual(leftovers(v.stack), [], `stack ${v.stack} left things behind`);
    });

    const get = (): RunningCluster => {
      if (!cluster) throw new Error("the cluster did not come up");
      return cluster;
    };
    const manager = async (): Promise<ManagerOps> => {
      const c = get();
      if (c.model.balancer.engine === "apache") return apacheManager(c);
      const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v) });
      return proxyNodeManager(c, (await stack.getConfig("drupal-cluster:managerToken")).value);
    };

    body(get, manager);

    it("pulumi destroy and the hosts' teardown leave no container, network or volume", async function () {
      const t0 = Date.now();
      await tearDown(v, log);
      tornDown = true;
      recordFigure(`${v.stack}: teardown, s`, (Date.now() - t0) / 1000);
      assert.deepEqual(leftovers(v.stack), []);
    });
  });
}

describe("cluster on the dev path: real pulumi up over SSH to local Debian hosts", function () {
  // A short answer timeout: the fault checks wait it out for requests a hung host holds.
  const APACHE: Variant = { stack: "ci-apache", portOffset: 1000, subnet: 61, balancer: { timeout: 5 } };
  clusterSuite("apache engine, 2 web servers", APACHE, (get, manager) => {
    registerUserChecks(get, manager);
    it("keeps every secret out of the state, the outputs and the engine's log", async () => {
      const v = APACHE;
      const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v) });
      // The state as stored (exportStack would decrypt it): the stack's checkpoint and its backups.
      const state = stateFiles(v.stack)
        .map((f) => fs.readFileSync(f, "utf8"))
        .join("\n");
      assert.ok(state.includes(`"drupal-cluster:dbPassword"`), "the stored state of the stack was not found");
      const outputs = JSON.stringify(await stack.outputs());
      for (const key of ["dbPassword", "hashSalt", "managerToken", "cronKey", "sshPrivateKey"]) {
        const secret = (await stack.getConfig(`drupal-cluster:${key}`)).value;
        const probe = secret.includes("PRIVATE KEY") ? secret.split("\n")[1] : secret;
        assert.ok(probe.length >= 16, `${key} is too short to check`);
        assert.ok(!state.includes(probe), `${key} is in the state in plaintext`);
        assert.ok(!outputs.includes(probe), `${key} is in the stack outputs`);
        assert.ok(!engineLog.includes(probe), `${key} is in the engine's log`);
      }
      // The data server has it, where MariaDB needs it, readable by root only.
      const mode = onHost(get().model, "data", "stat -c %a /etc/drupal-cluster/bootstrap.sql");
      assert.equal(mode.out, "600");
      // Nothing ties the state to this checkout: no path of it, no serialized provider code.
      assert.ok(!state.includes(REPO_ROOT), `the state holds this checkout's path (${REPO_ROOT})`);
      assert.ok(!state.includes("pulumi-nodejs:dynamic"), "the state holds dynamic-provider resources");
    });
    it("a second pulumi up with no change reports no changes", async () => {
      const v = APACHE;
      const t0 = Date.now();
      const r = await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log });
      recordFigure("ci-apache: no-change pulumi up, s", (Date.now() - t0) / 1000);
      const changed = Object.entries(r.summary.resourceChanges ?? {}).filter(([op, n]) => op !== "same" && (n ?? 0) > 0);
      assert.deepEqual(changed, [], `a no-change up changed: ${JSON.stringify(r.summary.resourceChanges)}`);
    });
    it("a changed balancer setting rewrites just the balancer's files and reloads just its services", async () => {
      const v = APACHE;
      const overrides = variantOverrides(v);
      (overrides.balancer as Record<string, unknown>).managerAllow = ["172.30.61.1", "10.99.0.0/16"];
      const updated: string[] = [];
      const onEvent = (e: EngineEvent): void => {
        const m = e.resourcePreEvent?.metadata;
        // The provider sees the stack config, so it is "updated" by any config change, harmlessly.
        // up refreshes first: those reads are not changes.
        if (m && m.op !== "same" && m.op !== "read" && m.op !== "refresh" && !m.type.startsWith("pulumi:providers:"))
          updated.push(`${m.op} ${m.urn.split("::").pop()}`);
      };
      await upWithSummary(v.stack, { baseStack: "dev", overrides, onOutput: log, onEvent });
      assert.deepEqual(updated.sort(), [
        "update balancer-service-apache2",
        "update balancer-service-proxy-node",
        "update balancer:/etc/apache2/sites-available/drupal-cluster-balancer.conf",
        "update balancer:/etc/proxy-node/config.json",
      ]);
      const page = await (await manager()).statusFromOutside();
      assert.equal(page, 403, "the manager opened up to a host outside the new allow list");
    });
    it("fails over when the pinned web server stops, and takes it back after retry", async () => {
      const report = await checkFailover(get());
      recordFigure("ci-apache: failover, failed requests", report.failed);
      recordFigure("ci-apache: failover, requests in the stream", report.requests);
      recordFigure("ci-apache: failover, stopped server back in rotation after, s", report.backAfterSeconds);
    });
    registerBalancerChangeUnderLoad(APACHE, get, log);
    registerRollingChecks(APACHE, get, log);
    registerScaleChecks(APACHE, get, log);
    registerFaultChecks(APACHE, get);
    it("drift: a host made again empty, a deleted vhost and a stopped apache2 are each found and repaired by the next up", async () => {
      const t0 = Date.now();
      const found = await driftAndRepair(get(), APACHE, log);
      recordFigure("ci-apache: up that repaired a rebuilt web server, a deleted file and a stopped service, s", (Date.now() - t0) / 1000);
      const has = (prefix: string): boolean => found.some((f) => f.startsWith(prefix));
      assert.ok(has("lb1:/etc/apache2/sites-available/drupal-cluster-web.conf: missing on the host"), found.join("\n"));
      assert.ok(has("lb1-service-apache2: applied, but its check fails"), found.join("\n"));
      assert.ok(has("lb2-install: not applied on this host"), found.join("\n"));
      assert.ok(has("lb2:/var/www/probe/index.php: missing on the host"), found.join("\n"));
      // The balancer takes each repaired server back once its health checks pass (rise 2 x 2 s), not at the end of the up.
      const t1 = Date.now();
      for (const w of get().model.web) {
        while ((await pinnedClientReaches(get(), w.route)) !== w.host.name) {
          assert.ok(Date.now() - t1 < 60000, `${w.host.name} was not back in rotation 60 s after the up that repaired it`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      recordFigure("ci-apache: repaired web servers back in rotation after that up, s", (Date.now() - t1) / 1000);
      await checkSticky(get(), 20);
      await checkSessionsInDatabase(get());
      const again = await upWithSummary(APACHE.stack, { baseStack: "dev", overrides: variantOverrides(APACHE), onOutput: log, skipPayloadCheck: true });
      const changed = Object.entries(again.summary.resourceChanges ?? {}).filter(([op, n]) => op !== "same" && (n ?? 0) > 0);
      assert.deepEqual(changed, [], "the repair left something that a second up changed again");
    });
    it("a host that answers with another host key is refused, and nothing is written to it", async () => {
      const c = get();
      replaceHostKey(c, "lb1");
      assert.equal(onHost(c.model, "lb1", "rm /var/www/probe/health.php").code, 0);
      await assert.rejects(
        upWithSummary(APACHE.stack, { baseStack: "dev", overrides: variantOverrides(APACHE), onOutput: log, skipPayloadCheck: true }),
        /the host key does not match .*expected SHA256:\S+, the host presented SHA256:\S+\. Nothing was sent to it/s,
      );
      assert.notEqual(onHost(c.model, "lb1", "test -e /var/www/probe/health.php").code, 0, "a file was written to the host with the wrong key");
      restoreHostKey(c, APACHE, "lb1");
      await upWithSummary(APACHE.stack, { baseStack: "dev", overrides: variantOverrides(APACHE), onOutput: log, skipPayloadCheck: true });
      assert.equal(onHost(c.model, "lb1", "test -e /var/www/probe/health.php").code, 0, "the file was not written back once the host had its own key again");
    });
    // Its down and up leave the same cluster (URLs, ports, keys), so it can run before the second clone's test.
    registerBackupRestore(APACHE, get, log);
    // Before the second clone's check, which destroys the cluster.
    registerCronChecks(APACHE, get, log);
    it("a second clone in another folder, with the same backend and passphrase, removes a web server and destroys the stack", async function () {
      const t0 = Date.now();
      const v = JSON.stringify(APACHE);
      inSecondClone(
        APACHE,
        `const s = require("./scripts/stack"); const lc = require("./test/support/local-cluster");
         (async () => {
           const v = ${v};
           const o = lc.variantOverrides(v);
           o.web = o.web.slice(0, 1);
           const r = await s.upWithSummary(v.stack, { baseStack: "dev", overrides: o, skipPayloadCheck: true, onOutput: () => undefined });
           if (!(r.summary.resourceChanges.delete > 0)) throw new Error("removing lb2 deleted nothing: " + JSON.stringify(r.summary.resourceChanges));
           await s.down(v.stack, { baseStack: "dev", overrides: o, onOutput: () => undefined });
         })().catch((e) => { console.error(e); process.exit(1); });`,
        log,
      );
      recordFigure("ci-apache: second clone: npm ci, bootstrap, change and destroy, s", (Date.now() - t0) / 1000);
      assert.deepEqual(leftovers(APACHE.stack), [], "the second clone's down left hosts behind");
    });
  });

  // Also the one cluster with a sticky separator other than Apache's default ".":
  // the balancer is told stickysessionsep=_ (issue 15), or these checks fail.
  const THREE: Variant = { stack: "ci-three", portOffset: 1100, subnet: 62, webCount: 3, init: "systemd", balancer: { stickysessionsep: "_" } };
  clusterSuite("apache engine, 3 web servers (a stack setting), stickysessionsep _, hosts with systemd as init", THREE, (get) => {
    it("stamps cookies balancer_<route> (the stack's separator is _)", async () => {
      assert.equal(get().model.sticky.separator, "_");
      assert.equal((await newClient(get())).browser.cookie(get().model.sticky.cookieName)?.startsWith("balancer_lb"), true);
    });
    it("spreads new clients evenly over 3 web servers", async () => {
      await checkSpread(get(), 9);
    });
    it("pins a client to its web server for 50 follow-up requests", async () => {
      await checkSticky(get(), 50);
    });
    // The rolling figures for 3 web servers (the 2-server suites have the rest of the rolling checks).
    registerRollingRestartCheck(THREE, get, log);
    it("fails over when the pinned web server stops", async () => {
      const report = await checkFailover(get());
      recordFigure("ci-three: failover, failed requests", report.failed);
    });
    it("with systemd as init: every service is enabled, one disabled by hand is enabled again by up, and after every host reboots the cluster serves without a manual step", async () => {
      const r = await rebootWithSystemd(get(), THREE, log);
      recordFigure("ci-three: reboot of every host (systemd) to every pinned client served by its web server, s", r.backAfterS);
      await checkSticky(get(), 20);
      await checkSessionsInDatabase(get());
    });
    // After the reboot (the timer must have come back by itself), before the destroy.
    registerCronChecks(THREE, get, log);
    registerEngineSwitchUnderLoad(THREE, get, log);
    it("a destroy that fails halfway keeps the hosts, says how to finish, and a second down finishes", async () => {
      replaceHostKey(get(), "lb3");
      await assert.rejects(tearDown(THREE, log), /its hosts are kept.*run the same command again/s);
      const kept = leftovers(THREE.stack).filter((l) => l.startsWith("container"));
      assert.equal(kept.length, 5, `hosts were removed after a failed destroy: ${kept.join(", ")}`);
      restoreHostKey(get(), THREE, "lb3");
      await tearDown(THREE, log);
      assert.deepEqual(leftovers(THREE.stack), []);
    });
  });

  const PROXYNODE: Variant = { stack: "ci-proxynode", portOffset: 1200, subnet: 63, engine: "proxy-node", balancer: { timeout: 5 } };
  clusterSuite("proxy-node engine, 2 web servers", PROXYNODE, (get, manager) => {
    registerUserChecks(get, manager);
    it("fails over when the pinned web server stops, and takes it back after retry", async () => {
      const report = await checkFailover(get());
      recordFigure("ci-proxynode: failover, failed requests", report.failed);
    });
    registerBalancerChangeUnderLoad(PROXYNODE, get, log);
    registerCodeChangeUnderLoad(PROXYNODE, get, log);
    registerRollingChecks(PROXYNODE, get, log);
    registerScaleChecks(PROXYNODE, get, log);
    registerFaultChecks(PROXYNODE, get);
    registerCronChecks(PROXYNODE, get, log);
    // Last: it leaves the same engine, but Apache and the agent have run in between.
    registerEngineSwitchUnderLoad(PROXYNODE, get, log);
  });

  // One pair for both engines: apache first, then the same hosts switched to proxy-node.
  const PAIR: Variant = { stack: "ci-pair", portOffset: 2000, subnet: 74, pair: true, balancer: { timeout: 5 } };
  clusterSuite("a balancer pair behind a virtual address (keepalived), engine apache then proxy-node", PAIR, (get) => {
    registerPairChecks(PAIR, get, "apache", log);
    it("switches the pair to engine proxy-node with one pulumi up", async () => {
      const t0 = Date.now();
      const overrides = variantOverrides({ ...PAIR, engine: "proxy-node" });
      await upWithSummary(PAIR.stack, { baseStack: "dev", overrides, onOutput: log, skipPayloadCheck: true });
      recordFigure("ci-pair: engine switch apache -> proxy-node on both balancers, s", (Date.now() - t0) / 1000);
    });
    registerPairChecks({ ...PAIR, engine: "proxy-node" }, get, "proxy-node", log);
  });
});
