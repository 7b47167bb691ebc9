/**
 * Rolling updates of the web servers (issue 16) on a real cluster: a change that
 * restarts Apache on every web server under steady load, rolling (0 failed) and
 * parallel beside it (a figure); a health gate that fails on the first web server stops the
 * rollout there; and a manual drain for maintenance.
 */
import * as assert from "node:assert/strict";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { drainMember } from "../../scripts/drain";
import { RolloutProgress } from "../../scripts/rollout-progress";
import { upWithSummary } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { underSteadyLoad } from "./changes";
import { newClient, pinnedClientReaches } from "./checks";
import { Browser, probePage } from "../support/http-client";

type Raw = Record<string, unknown>;

/**
 * The variant with a change to the web servers' vhost: balancer.logLevel lands
 * in every web server's vhost (Apache reloads there). A short drain: the pinned
 * client never goes idle, so each web server waits the whole drainSeconds.
 */
function withChange(v: Variant, logLevel: string, mode: "rolling" | "parallel"): Raw {
  const o = variantOverrides(v);
  (o.balancer as Raw).logLevel = logLevel;
  o.rollout = { mode, drainSeconds: 4, gateSeconds: 20 };
  return o;
}

/** PHP's workers and memory limit: a change of the workers restarts Apache (ServerLimit). */
interface PhpChange {
  workers: number;
  memoryLimit: string;
}

/** The variant with a change that restarts Apache on every web server, the PHP settings, drained as above. */
function withPhpChange(v: Variant, php: PhpChange, mode: "rolling" | "parallel"): Raw {
  const o = variantOverrides(v);
  o.php = { ...((o.php as Raw | undefined) ?? {}), workers: php.workers, memoryLimit: php.memoryLimit };
  o.rollout = { mode, drainSeconds: 4, gateSeconds: 20 };
  return o;
}

function webVhostLogLevel(c: RunningCluster, host: string): string {
  return onHost(c.model, host, "sed -n 's/^ *LogLevel //p' /etc/apache2/sites-available/drupal-cluster-web.conf").out;
}

/** What the running Apache and its mod_php have on one web server, asked of the server itself (not its files). */
interface RunningPhp {
  memoryLimit: string;
  /** Apache's parent process: a restart starts a new one, a graceful reload keeps it. */
  apacheParentPid: number;
  /** Slots in Apache's scoreboard: MaxRequestWorkers as the running server has it. */
  workers: number;
}

function runningPhp(c: RunningCluster, host: string): RunningPhp {
  const page = onHost(c.model, host, "curl -sf http://127.0.0.1/php.php");
  assert.equal(page.code, 0, `${host}: GET /php.php failed: ${page.out}`);
  const php = JSON.parse(page.out) as { memoryLimit: string; apacheParentPid: number };
  // mod_status answers local requests (Debian's status.conf): the scoreboard has one character per slot.
  const status = onHost(c.model, host, "curl -sf 'http://127.0.0.1/server-status?auto' | sed -n 's/^Scoreboard: //p'");
  assert.equal(status.code, 0, `${host}: GET /server-status failed: ${status.out}`);
  return { memoryLimit: php.memoryLimit, apacheParentPid: php.apacheParentPid, workers: status.out.length };
}

function runningEverywhere(c: RunningCluster): Map<string, RunningPhp> {
  return new Map(c.model.web.map((w) => [w.host.name, runningPhp(c, w.host.name)]));
}

/** Each web server runs `want`, in an Apache that was restarted since `before` (its parent process is another). */
function assertRestartedWith(c: RunningCluster, before: Map<string, RunningPhp>, want: PhpChange, what: string): void {
  for (const [host, now] of runningEverywhere(c)) {
    assert.equal(now.memoryLimit, want.memoryLimit, `${what}: mod_php on ${host} has memory_limit ${now.memoryLimit}`);
    assert.equal(now.workers, want.workers, `${what}: Apache on ${host} has ${now.workers} workers`);
    assert.notEqual(now.apacheParentPid, before.get(host)?.apacheParentPid, `${what}: Apache on ${host} was not restarted (same parent process)`);
  }
}

async function upTimed(v: Variant, overrides: Raw, log: (s: string) => void): Promise<{ seconds: number; progress: RolloutProgress }> {
  const progress = new RolloutProgress((l) => log(`${l}\n`));
  const t0 = Date.now();
  await upWithSummary(v.stack, { baseStack: "dev", overrides, onOutput: log, onEvent: (e: EngineEvent) => progress.onEvent(e), skipPayloadCheck: true });
  return { seconds: (Date.now() - t0) / 1000, progress };
}

/**
 * A change that restarts Apache on every web server (php.workers, with
 * php.memoryLimit) under steady load: rolling, one web server at a time, fails
 * no request; then back, in parallel, measured beside it. For any number of web servers.
 */
export function registerRollingRestartCheck(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  it("a change that restarts Apache on every web server (php.workers) under steady load: rolling, one at a time, drained and back, fails no request; parallel beside it (figure)", async () => {
    const c = get();
    const n = c.model.web.length;
    const start: PhpChange = { workers: c.model.php.workers, memoryLimit: c.model.php.memoryLimit };
    const changed: PhpChange = { workers: start.workers - 30, memoryLimit: start.memoryLimit === "192M" ? "160M" : "192M" };
    const before = runningEverywhere(c);
    for (const [host, now] of before)
      assert.deepEqual([now.memoryLimit, now.workers], [start.memoryLimit, start.workers], `${host} does not run the stack's PHP settings`);

    let rolling = { seconds: 0, progress: new RolloutProgress() };
    const r = await underSteadyLoad(c, async () => void (rolling = await upTimed(v, withPhpChange(v, changed, "rolling"), log)), { pinnedMayMove: true });
    assertRestartedWith(c, before, changed, "after the rolling update");
    // One at a time: each web server is back in rotation before the next is drained.
    const at = (host: string, step: string): number => rolling.progress.marks.find((m) => m.host === host && m.step === step)?.at ?? NaN;
    const hosts = c.model.web.map((w) => w.host.name);
    const marks = JSON.stringify(rolling.progress.marks);
    for (const step of ["draining", "applying", "health gate", "back in rotation"])
      for (const h of hosts) assert.ok(Number.isFinite(at(h, step)), `no "${step}" step seen for ${h}: ${marks}`);
    for (let i = 1; i < n; i++) {
      const [prev, next] = [hosts[i - 1], hosts[i]];
      assert.ok(at(prev, "back in rotation") < at(next, "draining"), `${next} was drained before ${prev} was back: ${marks}`);
    }
    const a = hosts[0];
    recordFigure(`${v.stack}: rolling update (Apache restarted) of ${n} web servers under load, requests sent`, r.sent);
    recordFigure(`${v.stack}: rolling update (Apache restarted) of ${n} web servers under load, requests failed`, r.failed);
    recordFigure(`${v.stack}: rolling update (Apache restarted) of ${n} web servers (drainSeconds 4), up, s`, rolling.seconds);
    recordFigure(`${v.stack}: rolling update, ${a} drained to back in rotation, s`, (at(a, "back in rotation") - at(a, "draining")) / 1000);
    assert.equal(r.failed, 0, `requests failed during a rolling update:\n${r.failures.join("\n")}`);
    // Taken out for real: while its web server was out, the pinned client was served by another one.
    assert.ok(r.moved > 0, `the client pinned to ${a} was never served elsewhere: ${a} was not taken out of rotation`);
    recordFigure(`${v.stack}: rolling update, answers to ${a}'s pinned client from another web server`, r.moved);

    // Back, all at once: the figure beside it (requests may fail: every Apache restarts at the same time).
    const mid = runningEverywhere(c);
    let parallel = 0;
    const p = await underSteadyLoad(c, async () => void (parallel = (await upTimed(v, withPhpChange(v, start, "parallel"), log)).seconds), {
      pinnedMayMove: true,
    });
    assertRestartedWith(c, mid, start, "after the parallel update");
    recordFigure(`${v.stack}: parallel update (Apache restarted) of ${n} web servers under load, requests sent`, p.sent);
    recordFigure(`${v.stack}: parallel update (Apache restarted) of ${n} web servers under load, requests failed`, p.failed);
    recordFigure(`${v.stack}: parallel update (Apache restarted) of ${n} web servers, up, s`, parallel);
  });
}

export function registerRollingChecks(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  const base = variantOverrides(v);
  const start = String((base.balancer as Raw).logLevel ?? "warn");
  const other = start === "info" ? "notice" : "info";

  registerRollingRestartCheck(v, get, log);

  it("a PHP setting other than workers (memoryLimit, opcacheMemory) reaches mod_php by a graceful reload: the same Apache parent, the new limit and OPcache's new size", async () => {
    const c = get();
    const page = (host: string): { memoryLimit: string; opcacheSharedBytes: number; apacheParentPid: number } =>
      JSON.parse(onHost(c.model, host, "curl -sf http://127.0.0.1/php.php").out);
    const before = new Map(c.model.web.map((w) => [w.host.name, page(w.host.name)]));
    const o = variantOverrides(v);
    o.php = { memoryLimit: c.model.php.memoryLimit === "320M" ? "288M" : "320M", opcacheMemory: c.model.php.opcacheMemory / 2 };
    o.rollout = { mode: "parallel" };
    await upWithSummary(v.stack, { baseStack: "dev", overrides: o, onOutput: log, skipPayloadCheck: true });
    for (const [host, was] of before) {
      const now = page(host);
      assert.equal(now.memoryLimit, (o.php as Raw).memoryLimit, `mod_php on ${host} did not get the new memory_limit`);
      assert.equal(now.opcacheSharedBytes, was.opcacheSharedBytes / 2, `OPcache on ${host} kept its old shared memory size`);
      assert.equal(now.apacheParentPid, was.apacheParentPid, `Apache on ${host} was restarted for a change a reload takes`);
    }
    await upWithSummary(v.stack, {
      baseStack: "dev",
      overrides: { ...variantOverrides(v), rollout: { mode: "parallel" } },
      onOutput: log,
      skipPayloadCheck: true,
    });
  });

  it("a health gate that fails on the first web server stops the rollout there: an error naming the host and the check, the other web server unchanged and serving; a good up repairs it", async () => {
    const c = get();
    const [first, second] = c.model.web.map((w) => w.host.name);
    // Broken by the change itself: Apache reads this file only when the rollout reloads it.
    const breaker = "/etc/apache2/conf-enabled/zz-rolling-test-break.conf";
    assert.equal(onHost(c.model, first, `printf '<Location /health.php>\\n  Require all denied\\n</Location>\\n' > ${breaker}`).code, 0);
    const broken = withChange(v, other, "rolling");
    const load = await underSteadyLoad(
      c,
      async () => {
        await assert.rejects(upTimed(v, broken, log), (e: Error) => {
          assert.match(e.message, new RegExp(`${first}: health gate failed: GET http://127\\.0\\.0\\.1/health\\.php on ${first} answered 403`));
          return true;
        });
      },
      { pinnedMayMove: true },
    );
    assert.equal(webVhostLogLevel(c, second), start, `${second} was changed although the rollout stopped at ${first}`);
    assert.equal(await pinnedClientReaches(c, second), second, `${second} does not serve its clients`);
    assert.notEqual(await pinnedClientReaches(c, first), first, `${first} is still in rotation after its health gate failed`);
    const status = onHost(
      c.model,
      c.model.balancer.host.name,
      `/opt/proxy-node/bin/proxy-node status ${c.model.web[0].route} --config /etc/proxy-node/config.json`,
    );
    assert.match(status.out, new RegExp(`^${c.model.web[0].route} disabled`), `the balancer does not hold ${first} disabled: ${status.out}`);
    recordFigure(`${v.stack}: failed health gate, requests sent meanwhile`, load.sent);
    assert.equal(load.failed, 0, `requests failed while the rollout stopped at ${first}:\n${load.failures.join("\n")}`);

    // The cause fixed (as an operator would: the file gone, Apache told), the same up again goes on from there, then back to the start.
    assert.equal(onHost(c.model, first, `rm -f ${breaker} && service apache2 reload`).code, 0);
    await upTimed(v, broken, log);
    assert.equal(await pinnedClientReaches(c, first), first, `${first} is not back in rotation after the good up`);
    assert.equal(webVhostLogLevel(c, second), other);
    // Back to the stack as the suite has it, so the checks after this one find it unchanged.
    await upTimed(v, variantOverrides(v), log);
  });

  it("manual drain (npm run drain / undrain): new clients go elsewhere, the pinned logged-in client stays until undrain; with --timeout it moves on, still logged in, once the timeout passed", async () => {
    const c = get();
    const target = c.model.web[c.model.web.length - 1];
    const stackOpts = { baseStack: "dev", overrides: variantOverrides(v) };
    // A user logged in on the web server about to be drained.
    const user = new Browser(c.balancerUrl);
    user.jar.set(c.model.sticky.cookieName, target.stickyValue);
    const name = `drain-${Date.now()}`;
    assert.equal((await user.post("/login.php", { name, pass: "maintenance" })).status, 303);
    const userPage = async (): Promise<{ server: string; user: string | null }> => probePage(await user.get("/"));
    const first = await userPage();
    assert.equal(first.server, target.host.name, "the logged-in client is not on the web server its cookie names");
    assert.equal(first.user, name, "the login did not hold");

    const out = await drainMember(v.stack, { action: "drain", host: target.host.name }, stackOpts);
    assert.match(out, new RegExp(`${target.route}: draining`));
    // The agent carries it into Apache's balancer-manager at once; give the page a moment.
    await new Promise((r) => setTimeout(r, 500));
    const servers: string[] = [];
    for (let i = 0; i < 6; i++) servers.push((await newClient(c)).server);
    assert.ok(!servers.includes(target.host.name), `new clients still reach the draining ${target.host.name}: ${servers.join(", ")}`);
    for (let i = 0; i < 5; i++) {
      const p = await userPage();
      assert.equal(p.server, target.host.name, "the logged-in client left the draining server");
      assert.equal(p.user, name, "the logged-in client was logged out while its server drained");
    }
    // An up that changes the balancer's own config (a reload) while it is drained, and back: it stays drained.
    const retry = variantOverrides(v);
    (retry.balancer as Raw).retry = 7;
    for (const overrides of [retry, variantOverrides(v)]) {
      await upWithSummary(v.stack, { baseStack: "dev", overrides, onOutput: log, skipPayloadCheck: true });
      const st = onHost(c.model, c.model.balancer.host.name, `/opt/proxy-node/bin/proxy-node status ${target.route} --config /etc/proxy-node/config.json`).out;
      assert.match(st, new RegExp(`^${target.route} draining`), `an up that reloaded the balancer put ${target.host.name} back: ${st}`);
      const p = await userPage();
      assert.deepEqual([p.server, p.user], [target.host.name, name], "the logged-in client lost its server or its login over the up");
    }
    const afterUp: string[] = [];
    for (let i = 0; i < 4; i++) afterUp.push((await newClient(c)).server);
    assert.ok(!afterUp.includes(target.host.name), `new clients reach the drained ${target.host.name} after the up: ${afterUp.join(", ")}`);
    await assert.rejects(
      drainMember(v.stack, { action: "drain", host: "lb9" }, stackOpts),
      new RegExp(`has no web server lb9; its web servers: ${c.model.web.map((w) => w.host.name).join(", ")}`),
    );
    const back = await drainMember(v.stack, { action: "undrain", host: target.host.name }, stackOpts);
    assert.match(back, /enabled, and the balancer's health check passes/);
    assert.equal((await userPage()).server, target.host.name, "the logged-in client is not served by its web server after undrain");
    // byrequests also counted the pinned client's requests against it, so the first new clients may all go elsewhere.
    const again: string[] = [];
    while (!again.includes(target.host.name) && again.length < 30) again.push((await newClient(c)).server);
    assert.ok(again.includes(target.host.name), `new clients do not reach ${target.host.name} after undrain: ${again.join(", ")}`);

    // With --timeout: the user keeps clicking (never idle), so the drain lasts the whole timeout, then the server is disabled and the user goes on elsewhere, still logged in.
    const timeoutS = 4;
    let clicking = true;
    const seen: Array<{ at: number; server: string; user: string | null }> = [];
    const clicks = (async () => {
      while (clicking) {
        const p = await userPage();
        seen.push({ at: Date.now(), server: p.server, user: p.user });
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const t0 = Date.now();
    let timed: string;
    try {
      timed = await drainMember(v.stack, { action: "drain", host: target.host.name, timeoutS }, stackOpts);
    } finally {
      await new Promise((r) => setTimeout(r, 1500));
      clicking = false;
      await clicks;
    }
    const tookS = (Date.now() - t0) / 1000;
    assert.match(timed, new RegExp(`${target.route}: disabled after \\d+\\.\\d s of draining`));
    assert.ok(tookS >= timeoutS, `drain --timeout ${timeoutS} returned after ${tookS.toFixed(1)} s although the client never went idle`);
    recordFigure(`${v.stack}: manual drain --timeout ${timeoutS} with a client clicking every 300 ms, returned after, s`, tookS);
    assert.deepEqual(
      seen.filter((p) => p.user !== name),
      [],
      "the logged-in client was logged out during the drain",
    );
    const beforeEnd = seen.filter((p) => p.at < t0 + (timeoutS - 1) * 1000);
    assert.ok(
      beforeEnd.length > 0 && beforeEnd.every((p) => p.server === target.host.name),
      `the logged-in client left ${target.host.name} before the timeout: ${JSON.stringify(beforeEnd)}`,
    );
    const last = seen[seen.length - 1];
    assert.notEqual(last.server, target.host.name, `the logged-in client is still served by the disabled ${target.host.name}`);
    assert.match(await drainMember(v.stack, { action: "undrain", host: target.host.name }, stackOpts), /enabled, and the balancer's health check passes/);
  });
}
