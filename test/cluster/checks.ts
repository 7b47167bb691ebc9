import * as assert from "node:assert/strict";
import { Browser, probePage } from "../support/http-client";
import { onHost, RunningCluster } from "../support/local-cluster";

/**
 * Checks through the balancer that need more than a client has: the hosts (a
 * session row in MariaDB, a stopped service) or a change in a manager. What a
 * client alone can check is `npm run verify` (ops/verify), which the suites call
 * too. They take a running cluster and the engine's manager operations, so every
 * topology and both balancer engines are held to the same checks.
 */

export interface ManagerOps {
  /** Takes a member out of rotation through the engine's own manager. */
  disable(route: string): Promise<void>;
  enable(route: string): Promise<void>;
  /** Status code of the manager page requested from inside web server lb1's host. */
  statusFromOutside(): number;
}

export async function newClient(c: RunningCluster): Promise<{ browser: Browser; route: string; server: string }> {
  const browser = new Browser(c.balancerUrl);
  const page = probePage(await browser.get("/"));
  const cookie = browser.cookie(c.model.sticky.cookieName);
  assert.ok(cookie, `a new client got no ${c.model.sticky.cookieName} cookie`);
  assert.ok(cookie.startsWith(c.model.sticky.valuePrefix), `cookie value ${cookie} does not start with ${c.model.sticky.valuePrefix}`);
  const route = cookie.slice(c.model.sticky.valuePrefix.length);
  assert.equal(route, page.route, `cookie names route ${route} but ${page.server} (route ${page.route}) answered`);
  return { browser, route, server: page.server };
}

/** New clients spread as byrequests says: evenly, within one request. */
export async function checkSpread(c: RunningCluster, clients: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = Object.fromEntries(c.model.web.map((w) => [w.host.name, 0]));
  for (let i = 0; i < clients; i++) counts[(await newClient(c)).server]++;
  const values = Object.values(counts);
  assert.ok(Math.max(...values) - Math.min(...values) <= 1, `uneven spread over ${clients} new clients: ${JSON.stringify(counts)}`);
  return counts;
}

/** One client, many requests: always the same web server, and its session counter grows. */
export async function checkSticky(c: RunningCluster, followUps: number): Promise<void> {
  const { browser, server } = await newClient(c);
  for (let i = 0; i < followUps; i++) {
    const page = probePage(await browser.get("/"));
    assert.equal(page.server, server, `request ${i + 2} of a pinned client went to ${page.server}, not ${server}`);
    assert.equal(page.visits, i + 2, `session counter on request ${i + 2} is ${page.visits}`);
  }
}

/** Login and counter survive across requests; the session row lives in MariaDB. */
export async function checkSessionsInDatabase(c: RunningCluster): Promise<void> {
  const { browser, route } = await newClient(c);
  const login = await browser.post("/login.php", { name: "alice", pass: "wonderland" });
  assert.equal(login.status, 303, `login answered ${login.status}: ${login.body}`);
  const page = probePage(await browser.get("/"));
  assert.equal(page.user, "alice");
  const sid = page.session;
  const db = c.model.data.database;
  const row = onHost(c.model, "data", `mysql -N -e "SELECT server, data FROM ${db}.probe_sessions WHERE id='${sid}'"`);
  assert.equal(row.code, 0, row.out);
  assert.match(row.out, /alice/, `session ${sid} is not in MariaDB: ${row.out}`);
  assert.match(row.out, new RegExp(`^${route}\\b`), `session row not written by ${route}: ${row.out}`);
  // The same session read on another web server: it comes from the database.
  const other = c.model.web.find((w) => w.route !== route);
  if (other) {
    browser.jar.set(c.model.sticky.cookieName, other.stickyValue);
    const moved = probePage(await browser.get("/"));
    assert.equal(moved.server, other.host.name, "a client whose cookie names another route did not move there");
    assert.equal(moved.user, "alice", "the login was lost on another web server");
    assert.equal(moved.visits, page.visits + 1, "the session counter was lost on another web server");
  }
}

export interface FailoverReport {
  pinnedTo: string;
  requests: number;
  failed: number;
  servedBySurvivors: number;
  backAfterSeconds: number;
}

/**
 * A steady stream from a pinned client; its web server's Apache is stopped
 * halfway. Requests must move to the survivors; when the server comes back it
 * gets new clients again once `retry` has passed.
 */
export async function checkFailover(c: RunningCluster, stopMs = 4000, afterMs = 6000): Promise<FailoverReport> {
  const { browser, server, route } = await newClient(c);
  let requests = 0;
  let failed = 0;
  let survivors = 0;
  let stopped = false;
  const lastAnswers: string[] = [];
  const t0 = Date.now();
  while (Date.now() - t0 < stopMs + afterMs) {
    if (!stopped && Date.now() - t0 >= stopMs) {
      const r = onHost(c.model, server, "service apache2 stop");
      assert.equal(r.code, 0, `could not stop apache2 on ${server}: ${r.out}`);
      stopped = true;
    }
    requests++;
    try {
      const r = await browser.get("/");
      if (r.status !== 200) failed++;
      else {
        const p = probePage(r);
        if (stopped && p.server !== server) survivors++;
        lastAnswers.push(p.server);
      }
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const tail = lastAnswers.slice(-10);
  assert.ok(tail.length === 10 && tail.every((s) => s !== server), `after ${server} stopped, the last answers were ${tail.join(",")}`);
  const start = onHost(c.model, server, "service apache2 start");
  assert.equal(start.code, 0, start.out);
  // Back in rotation once retry has passed: its own clients reach it again. (New
  // clients may keep going elsewhere for a while: byrequests counts the requests
  // the survivors took, by design.)
  const back0 = Date.now();
  const limitMs = (c.model.balancer.retry + 30) * 1000;
  let back = false;
  while (!back && Date.now() - back0 < limitMs) {
    back = (await pinnedClientReaches(c, route)) === server;
    if (!back) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(back, `${server} got no traffic within retry (${c.model.balancer.retry} s) + 30 s of coming back`);
  return { pinnedTo: server, requests, failed, servedBySurvivors: survivors, backAfterSeconds: (Date.now() - back0) / 1000 };
}

/** The manager: reachable from the allowed network, 403 elsewhere; a change made there moves traffic. */
export async function checkManager(c: RunningCluster, ops: ManagerOps): Promise<void> {
  assert.equal(ops.statusFromOutside(), 403, "the manager answered a host outside the allowed networks");
  const target = c.model.web[0];
  assert.equal(await pinnedClientReaches(c, target.route), target.host.name, "a client pinned to the first web server did not reach it");
  await ops.disable(target.route);
  try {
    for (let i = 0; i < 6; i++) {
      const { server } = await newClient(c);
      assert.notEqual(server, target.host.name, `a new client reached ${target.host.name} after it was disabled in the manager`);
    }
    const moved = await pinnedClientReaches(c, target.route);
    assert.notEqual(moved, target.host.name, `a client pinned to ${target.host.name} still reached it after it was disabled`);
  } finally {
    await ops.enable(target.route);
  }
  assert.equal(await pinnedClientReaches(c, target.route), target.host.name, `${target.host.name} got no traffic after it was enabled again`);
}

/** Which server answers a client whose sticky cookie names `route`. */
export async function pinnedClientReaches(c: RunningCluster, route: string): Promise<string | undefined> {
  const b = new Browser(c.balancerUrl);
  b.jar.set(c.model.sticky.cookieName, `${c.model.sticky.valuePrefix}${route}`);
  try {
    const r = await b.get("/");
    return r.status === 200 ? probePage(r).server : undefined;
  } catch {
    return undefined;
  }
}
