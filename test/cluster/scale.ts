/**
 * Scale out and in (issue 16): a web server added to `web` and removed again,
 * each by the `up` an operator runs, while clients keep coming. Added: it joins
 * the balancer once it passed the balancer's health check, and new clients
 * reach it. Removed: the balancer drains it (its sticky clients go on until it
 * is idle or rollout.drainSeconds), drops it, the data server drops its
 * database user, and its host is torn down; its logged-in client goes on on
 * another web server with its session (kept in MariaDB).
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { modelFromStackFile } from "../../infra/config/stack-file";
import { openStack, upWithSummary } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { Browser, probePage, request } from "../support/http-client";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { underSteadyLoad } from "./changes";
import { newClient } from "./checks";

interface PinnedLoop {
  servers: string[];
  failures: string[];
  stop(): Promise<void>;
}

/** A logged-in client (a browser's cookie jar) sending a request every 100 ms, its login checked on each answer. */
function loggedInLoop(browser: Browser, user: string): PinnedLoop {
  let on = true;
  const servers: string[] = [];
  const failures: string[] = [];
  const loop = (async () => {
    while (on) {
      const t0 = Date.now();
      try {
        const r = await browser.get("/");
        const page = r.status === 200 ? probePage(r) : undefined;
        if (!page) failures.push(`${new Date(t0).toISOString()}: status ${r.status}`);
        else {
          servers.push(page.server);
          if (page.user !== user) failures.push(`${new Date(t0).toISOString()}: ${page.server} answered without the login (user ${page.user})`);
        }
      } catch (e) {
        failures.push(`${new Date(t0).toISOString()} +${Date.now() - t0} ms: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    servers,
    failures,
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

/**
 * Polls the balancer's manager (proxy-node, serving or as Apache's agent) for
 * the statuses one member goes through until stopped: a member that was
 * drained before it was dropped shows "draining" there.
 */
function watchStatus(c: RunningCluster, token: string, route: string): { seen: Set<string>; stop(): Promise<void> } {
  let on = true;
  const seen = new Set<string>();
  const loop = (async () => {
    while (on) {
      try {
        const r = await request(`${c.model.balancer.managerUrl}/api/members`, { headers: { authorization: `Bearer ${token}` }, timeoutMs: 2000 });
        const m = (JSON.parse(r.body) as { members: Array<{ route: string; status: string }> }).members.find((x) => x.route === route);
        seen.add(m ? m.status : "absent");
      } catch {
        seen.add("no answer");
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    seen,
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

export function registerScaleChecks(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  it(`scales out 2 -> 3 web servers and back in under steady load (pinned, new and logged-in clients): no failed request, lb3 serves new clients once in, drained before it is dropped, its database user and its host gone`, async () => {
    const c = get();
    // The suite's own settings (rollout.drainSeconds from the dev stack): a changed rollout setting would roll every web server, twice.
    const withWeb = (webCount: number): Record<string, unknown> => variantOverrides({ ...v, webCount });
    const up = async (overrides: Record<string, unknown>): Promise<number> => {
      const t0 = Date.now();
      await upWithSummary(v.stack, { baseStack: "dev", overrides, onOutput: log, skipPayloadCheck: true });
      return (Date.now() - t0) / 1000;
    };
    const three: RunningCluster = { ...c, model: modelFromStackFile(v.stack, withWeb(3), "dev") };
    const lb3 = three.model.web[2];
    const drainSeconds = three.model.rollout.drainSeconds;
    const user = c.model.data.user;
    const container = `${c.model.project}-${v.stack}-lb3`;

    // Scale out.
    let outS = 0;
    const out = await underSteadyLoad(c, async () => void (outS = await up(withWeb(3))));
    recordFigure(`${v.stack}: scale out 2 -> 3 (pulumi up), s`, outS);
    recordFigure(`${v.stack}: scale out under load, requests sent`, out.sent);
    recordFigure(`${v.stack}: scale out under load, requests failed`, out.failed);
    assert.equal(out.failed, 0, `requests failed while lb3 was added:\n${out.failures.join("\n")}`);
    // proxy-node takes a new member once its own health checks rose (rise x interval after the
    // reload), Apache at once; byrequests then owes lb3 the requests the others served meanwhile.
    const servedBy: string[] = [];
    const joined = Date.now();
    while (!servedBy.includes("lb3")) {
      assert.ok(Date.now() - joined < 15_000, `new clients for 15 s after the scale-out, none reached lb3: ${servedBy.join(", ")}`);
      servedBy.push((await newClient(three)).server);
      if (!servedBy.includes("lb3")) await new Promise((r) => setTimeout(r, 200));
    }
    recordFigure(`${v.stack}: scale out, first new client on lb3 after the up, s`, (Date.now() - joined) / 1000);

    // A client pinned to lb3 logs in there.
    const browser = new Browser(c.balancerUrl);
    browser.jar.set(c.model.sticky.cookieName, lb3.stickyValue);
    assert.equal(probePage(await browser.get("/")).server, "lb3");
    const login = await browser.post("/login.php", { name: "scale-in", pass: "wonderland" });
    assert.equal(login.status, 303, `login on lb3 answered ${login.status}: ${login.body}`);
    const before = probePage(await browser.get("/"));
    assert.deepEqual([before.server, before.user], ["lb3", "scale-in"]);
    const grants = (): string =>
      onHost(c.model, "data", `mysql -N -e "SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User = '${user}' ORDER BY Host"`).out;
    assert.match(grants(), new RegExp(`${user}@${lb3.host.clusterAddress.replace(/\./g, "\\.")}\\b`));

    // Scale in, the logged-in client still coming.
    const token = (
      await (await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), existing: true })).stack.getConfig("drupal-cluster:managerToken")
    ).value;
    const pinned = loggedInLoop(browser, "scale-in");
    const statuses = watchStatus(c, token, lb3.route);
    let inS = 0;
    const inLoad = await underSteadyLoad(c, async () => void (inS = await up(withWeb(2)))).finally(async () => {
      await pinned.stop();
      await statuses.stop();
    });
    recordFigure(`${v.stack}: scale in 3 -> 2 (pulumi up, drain included), s`, inS);
    recordFigure(`${v.stack}: scale in under load, requests sent`, inLoad.sent + pinned.servers.length + pinned.failures.length);
    recordFigure(`${v.stack}: scale in under load, requests failed`, inLoad.failed + pinned.failures.length);
    assert.equal(inLoad.failed, 0, `requests failed while lb3 was removed:\n${inLoad.failures.join("\n")}`);
    assert.deepEqual(pinned.failures, [], "lb3's logged-in client failed or lost its login");
    // Its sticky client kept lb3 while it drained (the up waited for it), then moved on with its session.
    assert.ok(statuses.seen.has("draining"), `lb3 was never draining in the balancer before it was dropped (seen: ${[...statuses.seen].join(", ")})`);
    assert.ok(statuses.seen.has("absent"), `lb3 is still in the balancer (seen: ${[...statuses.seen].join(", ")})`);
    assert.ok(inS >= drainSeconds, `scale-in took ${inS} s: lb3 was dropped before rollout.drainSeconds (${drainSeconds}) although its client kept coming`);
    assert.equal(pinned.servers[0], "lb3");
    const last = pinned.servers[pinned.servers.length - 1];
    assert.ok(["lb1", "lb2"].includes(last), `lb3's client ends on ${last}`);
    assert.ok(pinned.servers.indexOf(last) > pinned.servers.lastIndexOf("lb3"), `lb3's client went back to lb3: ${pinned.servers.join(" ")}`);
    const after = probePage(await browser.get("/"));
    assert.equal(after.user, "scale-in");
    assert.equal(after.visits, before.visits + pinned.servers.length + 1, "the visit counter was lost on the way");

    // What the removed server had is gone: its database user, its host.
    const left = grants();
    assert.doesNotMatch(left, new RegExp(`@${lb3.host.clusterAddress.replace(/\./g, "\\.")}\\b`), `lb3's database user is still there: ${left}`);
    for (const w of c.model.web)
      assert.match(left, new RegExp(`@${w.host.clusterAddress.replace(/\./g, "\\.")}\\b`), `${w.host.name}'s user was dropped: ${left}`);
    const gone = spawnSync("docker", ["inspect", container], { encoding: "utf8" });
    assert.notEqual(gone.status, 0, `${container} is still there after the scale-in`);
    // And the cluster is the suite's again: two web servers serve pinned clients.
    for (const w of c.model.web) {
      const b = new Browser(c.balancerUrl);
      b.jar.set(c.model.sticky.cookieName, w.stickyValue);
      assert.equal(probePage(await b.get("/")).server, w.host.name);
    }
  });
}
