// Two agent-mode balancers, each a real Apache 2.4 with proxy-node beside it,
// each proxy-node the other's peer (issue 12).
import { strict as assert } from "node:assert";
import { startMember, startProxy, closeAll, freePort, until, sleep, type MemberServer } from "../helpers";
import { validateConfig } from "../../src/config";
import { ApacheAgent } from "../../src/agent";
import { silentLogger } from "../../src/log";
import type { ProxyNode } from "../../src/app";
import { apacheBalancer, apacheInstalled, stopApaches, type Apache } from "./apache";
import { EventLog, TOKEN, change, statusOf } from "./helpers";

interface Balancer {
  name: string;
  apache: Apache;
  managerPort: number;
  app: ProxyNode | null;
  log: EventLog;
}

/** Members whose health check fails for balancer "a" only when `failForA` says so: each balancer checks on its own. */
async function members(state: { failForA: boolean }): Promise<MemberServer[]> {
  const handler = (route: string) => (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
    if (req.url === "/health-a") res.writeHead(state.failForA && route === "lb2" ? 503 : 200).end();
    else if (req.url === "/health-b") res.writeHead(200).end();
    else res.writeHead(200, { "Content-Type": "text/plain" }).end(route);
  };
  return [await startMember("lb1", handler("lb1")), await startMember("lb2", handler("lb2"))];
}

async function startAgent(self: Balancer, peer: Balancer, lbs: MemberServer[]): Promise<ProxyNode> {
  self.log = new EventLog();
  const cfg = validateConfig({
    mode: "agent",
    log: { requests: false },
    apache: { managerUrl: self.apache.managerUrl, balancer: "drupal" },
    manager: { host: "127.0.0.1", port: self.managerPort, allow: ["127.0.0.0/8"], token: TOKEN },
    redundancy: { self: self.name, virtualAddress: "192.0.2.10", peers: [{ name: peer.name, managerUrl: `http://127.0.0.1:${peer.managerPort}` }] },
    balancer: {
      name: "drupal",
      members: lbs.map((m) => ({ url: m.url, route: m.route })),
      healthCheck: { path: `/health-${self.name}`, intervalMs: 200, rise: 1, fall: 1, expect: 200, timeoutMs: 1000 },
    },
  });
  self.app = await startProxy(cfg, self.log);
  return self.app;
}

async function pair(lbs: MemberServer[]): Promise<{ a: Balancer; b: Balancer }> {
  const a: Balancer = { name: "a", apache: await apacheBalancer(lbs), managerPort: await freePort(), app: null, log: new EventLog() };
  const b: Balancer = { name: "b", apache: await apacheBalancer(lbs), managerPort: await freePort(), app: null, log: new EventLog() };
  await startAgent(a, b, lbs);
  await startAgent(b, a, lbs);
  return { a, b };
}

const words = (s: string): string[] => s.split(/\s+/);

describe("redundancy: agent mode, two real Apache balancers", function () {
  this.timeout(60_000);
  before(function () {
    if (!apacheInstalled()) throw new Error("apache2 is not installed (Debian package apache2-bin): run scripts/bootstrap");
  });
  afterEach(async () => {
    await closeAll();
    await stopApaches();
  });

  it("lb2 disabled in a's Apache page is disabled in b's Apache (its sticky clients move); enabled in b's page, enabled in a's", async () => {
    const lbs = await members({ failForA: false });
    const { a, b } = await pair(lbs);
    assert.equal(await b.apache.sticky("lb2"), "lb2");
    // What an operator's browser posts on a's balancer-manager page.
    assert.ok(await new ApacheAgent({ managerUrl: a.apache.managerUrl, balancer: "drupal" }, silentLogger).setEnabled(lbs[1].url, false));
    await until(async () => words((await b.apache.statuses()).lb2).includes("Dis"), "lb2 disabled in b's Apache", 10_000);
    assert.equal(await b.apache.sticky("lb2"), "lb1");
    assert.equal(await statusOf(b.managerPort, "lb2"), "disabled", "b's proxy-node manager shows it");
    assert.equal(await statusOf(a.managerPort, "lb2"), "disabled", "a's proxy-node manager shows it");

    assert.ok(await new ApacheAgent({ managerUrl: b.apache.managerUrl, balancer: "drupal" }, silentLogger).setEnabled(lbs[1].url, true));
    await until(async () => !words((await a.apache.statuses()).lb2).includes("Dis"), "lb2 enabled again in a's Apache", 10_000);
    assert.equal(await a.apache.sticky("lb2"), "lb2");
    // Each change crossed once: a carried its page's D, b its page's enable; neither came back.
    await sleep(3500);
    assert.deepEqual(await a.apache.statuses(), { lb1: "Init Ok", lb2: "Init Ok" });
    assert.deepEqual(await b.apache.statuses(), { lb1: "Init Ok", lb2: "Init Ok" });
    assert.equal(a.log.count("member changed by peer"), 1);
    assert.equal(b.log.count("member changed by peer"), 1);
  });

  it("a's failed health check stays a's (b keeps lb2), and an operator's disable outlives a's recovery", async () => {
    const state = { failForA: true };
    const lbs = await members(state);
    const { a, b } = await pair(lbs);
    await until(async () => words((await a.apache.statuses()).lb2).includes("HcFl"), "lb2 failed in a's Apache", 10_000);
    assert.equal(await a.apache.sticky("lb2"), "lb1", "a's Apache still sends to a member that failed a's checks");
    // Two of the watchers' reads and then some: time for a wrongly carried change to land.
    await sleep(4000);
    assert.equal((await b.apache.statuses()).lb2, "Init Ok", "a's health check reached b's Apache");
    assert.equal(await b.apache.sticky("lb2"), "lb2");
    assert.equal(await statusOf(b.managerPort, "lb2"), "enabled");

    // An operator disables lb2 through a's proxy-node manager: both Apaches, and the answer says so.
    const r = await change(a.managerPort, "lb2", { status: "disabled" });
    assert.equal(r.status, 200);
    const answer = JSON.parse(r.body) as { apache: { ok: boolean }; peers: Array<{ name: string; ok: boolean }> };
    assert.deepEqual(answer.apache, { ok: true });
    assert.deepEqual(answer.peers, [{ name: "b", ok: true }]);
    assert.ok(words((await a.apache.statuses()).lb2).includes("Dis"));
    assert.ok(words((await b.apache.statuses()).lb2).includes("Dis"));
    assert.equal(await b.apache.sticky("lb2"), "lb1");

    // lb2 passes a's checks again: HcFl goes, the operator's Dis stays, on both.
    state.failForA = false;
    await until(async () => !words((await a.apache.statuses()).lb2).includes("HcFl"), "lb2 healthy again in a's Apache", 10_000);
    await sleep(3500);
    assert.equal((await a.apache.statuses()).lb2, "Init Dis");
    assert.equal((await b.apache.statuses()).lb2, "Init Dis");
    assert.equal(await a.apache.sticky("lb2"), "lb1");
  });

  it("a balancer (Apache and proxy-node) down while lb2 was drained comes back with lb2 drained in its Apache", async () => {
    const lbs = await members({ failForA: false });
    const { a, b } = await pair(lbs);
    await b.app?.stop(0);
    await b.apache.stop();
    const r = JSON.parse((await change(a.managerPort, "lb2", { status: "draining" })).body) as { peers: Array<{ ok: boolean }> };
    assert.equal(r.peers[0].ok, false);
    assert.ok(words((await a.apache.statuses()).lb2).includes("Drn"));

    // A fresh Apache starts from its config (lb2 Ok); proxy-node takes a's statuses and sets them in it.
    await b.apache.start();
    assert.equal((await b.apache.statuses()).lb2, "Init Ok");
    await startAgent(b, a, lbs);
    await until(async () => words((await b.apache.statuses()).lb2).includes("Drn"), "lb2 draining in b's Apache", 10_000);
    // And that is not carried back to a as an operator's change (a already has it): a's log has no peer change.
    await sleep(2000);
    assert.equal(a.log.count("member changed by peer"), 0);
  });

  it("one balancer, no peer: an operator's drain outlives a reload of Apache and a reload of proxy-node with a new config", async () => {
    const lbs = await members({ failForA: false });
    const self: Balancer = { name: "a", apache: await apacheBalancer(lbs), managerPort: await freePort(), app: null, log: new EventLog() };
    const raw = {
      mode: "agent",
      log: { requests: false },
      apache: { managerUrl: self.apache.managerUrl, balancer: "drupal" },
      manager: { host: "127.0.0.1", port: self.managerPort, allow: ["127.0.0.0/8"], token: TOKEN },
      balancer: {
        name: "drupal",
        members: lbs.map((m) => ({ url: m.url, route: m.route, retry: 60 })),
        healthCheck: { path: "/health-a", intervalMs: 200, rise: 1, fall: 1, expect: 200, timeoutMs: 1000 },
      },
    };
    const app = await startProxy(validateConfig(raw), self.log);
    assert.equal((await change(self.managerPort, "lb2", { status: "draining" })).status, 200);
    await until(async () => words((await self.apache.statuses()).lb2).includes("Drn"), "lb2 draining in Apache", 10_000);
    // systemctl reload apache2, as any change of Apache's config does: its flags go back to the config's, then the drain comes back.
    self.apache.graceful();
    await until(() => self.log.count("Apache's status differs from proxy-node's; setting proxy-node's") === 1, "the reloaded Apache seen", 10_000);
    await until(async () => words((await self.apache.statuses()).lb2).includes("Drn"), "lb2 draining again in the reloaded Apache", 10_000);
    // proxy-node's own reload with another config (lb1's retry): the drain stays, in proxy-node and in Apache.
    raw.balancer.members[0].retry = 7;
    app.reload(validateConfig(raw));
    await sleep(3500);
    assert.equal(await statusOf(self.managerPort, "lb2"), "draining");
    assert.ok(words((await self.apache.statuses()).lb2).includes("Drn"), `lb2 in Apache after proxy-node's reload: ${(await self.apache.statuses()).lb2}`);
    // Both at once, Apache first, as an up that changes both runs them.
    self.apache.graceful();
    raw.balancer.members[0].retry = 8;
    app.reload(validateConfig(raw));
    await until(async () => words((await self.apache.statuses()).lb2).includes("Drn"), "lb2 draining after both reloads", 10_000);
    assert.equal(await statusOf(self.managerPort, "lb2"), "draining");
    assert.equal(await self.apache.sticky("lb1"), "lb1");
  });

  it("b's Apache reloaded, then restarted, under its running proxy-node: lb2 disabled again there each time, and never enabled on a", async () => {
    const lbs = await members({ failForA: false });
    const { a, b } = await pair(lbs);
    assert.equal((await change(a.managerPort, "lb2", { status: "disabled" })).status, 200);
    assert.equal((await b.apache.statuses()).lb2, "Init Dis");
    // A graceful restart (systemctl reload apache2) forgets balancer-manager changes, as a full one does.
    // b's proxy-node logs it when it finds its Apache showing lb2 enabled again.
    const resets = (): number => b.log.count("Apache's status differs from proxy-node's; setting proxy-node's");
    b.apache.graceful();
    await until(() => resets() === 1, "b's Apache reloaded with lb2 back to its config", 10_000);
    await until(async () => (await b.apache.statuses()).lb2 === "Init Dis", "lb2 disabled again in b's reloaded Apache", 10_000);
    await b.apache.stop();
    await b.apache.start();
    await until(() => resets() === 2, "b's Apache restarted with lb2 back to its config", 10_000);
    await until(async () => (await b.apache.statuses()).lb2 === "Init Dis", "lb2 disabled again in b's restarted Apache", 10_000);
    await sleep(3500);
    assert.equal((await a.apache.statuses()).lb2, "Init Dis", "b's fresh Apache enabled lb2 on a");
    assert.equal(await statusOf(b.managerPort, "lb2"), "disabled");
  });
});
