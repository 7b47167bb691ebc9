/**
 * Changes without failed requests (issue 16): a pulumi up while clients keep
 * coming, each request timed. A balancer-only change, which Apache takes with a
 * graceful reload and proxy-node with SIGHUP (its process is kept); and new
 * proxy-node code, which a new process takes over by a handover.
 */
import * as assert from "node:assert/strict";
import { upWithSummary } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { Browser, probePage, request } from "../support/http-client";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { readProxyNodeArtifact } from "../../infra/payload/artifacts";

/** The proxy-node process serving: systemd's main pid, or the supervisor's pidfile. */
function servingPid(c: RunningCluster): string {
  return onHost(
    c.model,
    c.model.balancer.host.name,
    "if [ -d /run/systemd/system ]; then systemctl show -p MainPID --value proxy-node; else cat /run/proxy-node.pid; fi",
  ).out;
}

export interface LoadReport {
  sent: number;
  failed: number;
  failures: string[];
  /** Answers to the pinned client from another web server (allowed with pinnedMayMove). */
  moved: number;
}

/**
 * Runs `work` while a pinned, a new and a logged-in client each send a request
 * every 50 ms through the balancer. The logged-in client (the probe's login
 * form, its session in MariaDB) must stay logged in throughout, and on its web
 * server. pinnedMayMove: the pinned clients' web servers are taken out on
 * purpose (a rollout), so another one answering them is no failure.
 */
export async function underSteadyLoad(c: RunningCluster, work: () => Promise<void>, opts: { pinnedMayMove?: boolean } = {}): Promise<LoadReport> {
  let running = true;
  const failures: string[] = [];
  let sent = 0;
  let moved = 0;
  const w = c.model.web[0];
  const loop = async (pinned: boolean): Promise<void> => {
    while (running) {
      const start = Date.now();
      sent++;
      try {
        const r = await request(`${c.balancerUrl}/`, { headers: pinned ? { cookie: `${c.model.sticky.cookieName}=${w.stickyValue}` } : {}, timeoutMs: 30000 });
        if (r.status !== 200) failures.push(`${new Date(start).toISOString()}: status ${r.status}`);
        else if (pinned && probePage(r).server !== w.host.name) {
          moved++;
          if (!opts.pinnedMayMove) failures.push(`${new Date(start).toISOString()}: pinned client served by ${probePage(r).server}`);
        }
      } catch (e) {
        failures.push(`${new Date(start).toISOString()} +${Date.now() - start} ms: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // Logged in through the balancer before the work starts, as a user would be; on another web server
  // than the pinned client, so that byrequests (which counts sticky requests too) is not skewed twice
  // toward one of them and owes the next new clients to no single one.
  const user = new Browser(c.balancerUrl);
  user.jar.set(c.model.sticky.cookieName, (c.model.web[1] ?? w).stickyValue);
  const name = `load-${process.pid}-${Date.now()}`;
  const login = await user.post("/login.php", { name, pass: "steady" });
  assert.equal(login.status, 303, `the load's login answered ${login.status}: ${login.body}`);
  const home = probePage(await user.get("/"));
  assert.equal(home.user, name, "the load's login did not hold");
  const loggedIn = async (): Promise<void> => {
    while (running) {
      const start = Date.now();
      sent++;
      try {
        const r = await user.get("/");
        const page = r.status === 200 ? probePage(r) : undefined;
        if (!page) failures.push(`${new Date(start).toISOString()}: logged-in client: status ${r.status}`);
        else if (page.user !== name)
          failures.push(`${new Date(start).toISOString()}: logged-in client logged out on ${page.server} (user ${page.user || "none"})`);
        else if (page.server !== home.server && !opts.pinnedMayMove)
          failures.push(`${new Date(start).toISOString()}: logged-in client served by ${page.server}, not ${home.server}`);
      } catch (e) {
        failures.push(`${new Date(start).toISOString()} +${Date.now() - start} ms: logged-in client: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const loops = [loop(true), loop(false), loggedIn()];
  await new Promise((r) => setTimeout(r, 500));
  try {
    await work();
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    running = false;
    await Promise.all(loops);
  }
  return { sent, failed: failures.length, failures, moved };
}

/**
 * balancer.retry changed and then set back, each by a pulumi up under load:
 * no request fails, and with proxy-node the process that serves is the same
 * one afterwards (SIGHUP, not a restart).
 */
export function registerBalancerChangeUnderLoad(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  it("a balancer-only change (retry) under steady load, and back: no failed request; proxy-node takes it by SIGHUP, in the same process", async () => {
    const c = get();
    const pid = (): string => servingPid(c);
    const before = pid();
    assert.match(before, /^[1-9]\d*$/, `no proxy-node process on the balancer (${before})`);
    const changed = variantOverrides(v);
    (changed.balancer as Record<string, unknown>).retry = 7;
    const r = await underSteadyLoad(c, async () => {
      await upWithSummary(v.stack, { baseStack: "dev", overrides: changed, onOutput: log, skipPayloadCheck: true });
      await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, skipPayloadCheck: true });
    });
    recordFigure(`${v.stack}: balancer-only change and back under load, requests sent`, r.sent);
    recordFigure(`${v.stack}: balancer-only change and back under load, requests failed`, r.failed);
    assert.equal(r.failed, 0, `requests failed during a balancer-only change:\n${r.failures.join("\n")}`);
    assert.equal(pid(), before, "proxy-node was restarted for a change its SIGHUP reload takes");
  });
}

/**
 * Engine proxy-node: a pulumi up that delivers a changed proxy-node build, and
 * one that delivers the built one again, under load. Each is a handover to a
 * new process (another pid, running, its keys recorded), and no request fails.
 */
export function registerCodeChangeUnderLoad(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  it("new proxy-node code under steady load, and back: a new process takes over each time, no failed request", async () => {
    const c = get();
    const first = servingPid(c);
    assert.match(first, /^[1-9]\d*$/, `no proxy-node process on the balancer (${first})`);
    const built = readProxyNodeArtifact();
    // Another build, as the next release would be: same behaviour, another code key.
    const changed = `${built}\n// a later build (${new Date().toISOString()})\n`;
    const pids: string[] = [first];
    const seconds: number[] = [];
    const deliver = async (artifact: string | undefined): Promise<void> => {
      const t0 = Date.now();
      await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, skipPayloadCheck: true, proxyNodeArtifact: artifact });
      seconds.push((Date.now() - t0) / 1000);
      pids.push(servingPid(c));
    };
    const r = await underSteadyLoad(c, async () => {
      await deliver(changed);
      await deliver(undefined);
    });
    recordFigure(`${v.stack}: new proxy-node code and back under load, requests sent`, r.sent);
    recordFigure(`${v.stack}: new proxy-node code and back under load, requests failed`, r.failed);
    recordFigure(`${v.stack}: pulumi up delivering new proxy-node code, s`, seconds[0]);
    assert.equal(r.failed, 0, `requests failed while new proxy-node code was delivered:\n${r.failures.join("\n")}`);
    assert.equal(new Set(pids).size, 3, `proxy-node was not replaced by a new process each time: pids ${pids.join(", ")}`);
    const host = c.model.balancer.host.name;
    assert.equal(onHost(c.model, host, `kill -0 ${pids[2]} && echo running`).out, "running");
    assert.equal(
      onHost(c.model, host, "cmp /run/proxy-node.key /etc/proxy-node/code-key && echo same").out,
      "same",
      "the new process's code key is not recorded",
    );
    // The handover, not a restart, in proxy-node's own log.
    const logged = onHost(c.model, host, "if [ -d /run/systemd/system ]; then journalctl -u proxy-node --no-pager; else cat /var/log/proxy-node.log; fi").out;
    for (const p of pids.slice(1))
      assert.match(logged, new RegExp(`"msg":"proxy-node started"[^\n]*"pid":${p},"handover":true`), `process ${p} did not start by a handover`);
  });
}

type Engine = NonNullable<Variant["engine"]>;

/** Which engine holds the clients' port on the balancer: Apache running, or proxy-node in serve mode. */
function servingEngine(c: RunningCluster): string {
  return onHost(
    c.model,
    c.model.balancer.host.name,
    'if service apache2 status >/dev/null 2>&1; then echo apache; fi; grep -q \'"mode": *"serve"\' /etc/proxy-node/config.json && echo proxy-node; true',
  ).out;
}

/**
 * The engine switched under load, and back: each engine binds the client port
 * beside the other (SO_REUSEPORT) and the one that goes stops gracefully, so
 * no request fails either way.
 */
export function registerEngineSwitchUnderLoad(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  const from: Engine = v.engine ?? "apache";
  const to: Engine = from === "apache" ? "proxy-node" : "apache";
  it(`an engine switch under steady load, ${from} -> ${to} and back: no failed request, and the other engine serves after each`, async () => {
    const c = get();
    assert.equal(servingEngine(c), from);
    for (const [engine, back] of [
      [to, from],
      [from, to],
    ] as const) {
      let seconds = 0;
      const r = await underSteadyLoad(c, async () => {
        const t0 = Date.now();
        await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides({ ...v, engine }), onOutput: log, skipPayloadCheck: true });
        seconds = (Date.now() - t0) / 1000;
      });
      recordFigure(`${v.stack}: engine switch ${back} -> ${engine} under load, requests sent`, r.sent);
      recordFigure(`${v.stack}: engine switch ${back} -> ${engine} under load, requests failed`, r.failed);
      recordFigure(`${v.stack}: engine switch ${back} -> ${engine}, up, s`, seconds);
      assert.equal(servingEngine(c), engine, `after the switch to ${engine}`);
      assert.equal(r.failed, 0, `requests failed during the engine switch ${back} -> ${engine}:\n${r.failures.join("\n")}`);
    }
  });
}
