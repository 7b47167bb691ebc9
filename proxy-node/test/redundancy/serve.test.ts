// Two serve-mode balancers, each the other's peer (issue 12): what an operator
// and the clients of either balancer see after a change made on one of them.
import { strict as assert } from "node:assert";
import * as net from "node:net";
import { startMember, startProxy, baseConfig, request, closeAll, freePort, sleep } from "../helpers";
import { blackhole } from "../blackhole";
import { EventLog, change, members, pairConfig, startPair, statusOf } from "./helpers";

interface PeerAnswer {
  status: string;
  peers: Array<{ name: string; ok: boolean; error?: string }>;
}

const sticky = (route: string) => ({ Cookie: `BALANCEID=balancer.${route}` });

describe("redundancy: serve mode, a pair of balancers", function () {
  this.timeout(20_000);
  afterEach(closeAll);

  it("lb2 disabled through a's manager: b's sticky clients of lb2 go to lb1 too, and the answer says b took it", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const { a, b } = await startPair([lb1, lb2]);
    const bPort = b.app?.port ?? 0;
    assert.equal((await request(bPort, { path: "/", headers: sticky("lb2") })).body, "lb2");

    const r = await change(a.managerPort, "lb2", { status: "disabled" });
    assert.equal(r.status, 200);
    const answer = JSON.parse(r.body) as PeerAnswer;
    assert.equal(answer.status, "disabled");
    assert.deepEqual(answer.peers, [{ name: "b", ok: true }]);

    assert.equal((await request(bPort, { path: "/", headers: sticky("lb2") })).body, "lb1", "b still sends lb2's sticky clients to lb2");
    assert.equal(await statusOf(b.managerPort, "lb2"), "disabled");

    // And back, from the other side this time.
    const back = JSON.parse((await change(b.managerPort, "lb2", { status: "enabled", lbfactor: 3 })).body) as PeerAnswer;
    assert.deepEqual(back.peers, [{ name: "a", ok: true }]);
    assert.equal((await request(a.app?.port ?? 0, { path: "/", headers: sticky("lb2") })).body, "lb2");
    assert.equal((await members(a.managerPort)).members.find((m) => m.route === "lb2")?.lbfactor, 3);
  });

  it("a carried change is applied once on each balancer and not sent back (no loop)", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const { a, b } = await startPair([lb1, lb2]);
    await change(a.managerPort, "lb2", { status: "draining" });
    // Time for a loop to show, if there were one.
    await sleep(500);
    assert.equal(a.log.count("member changed by manager"), 1);
    assert.equal(a.log.count("member changed by peer"), 0, "a got its own change back");
    assert.equal(b.log.count("member changed by peer"), 1);
    assert.equal(b.log.count("member changed by manager"), 0);
    assert.equal(b.log.events.find((e) => e.msg === "member changed by peer")?.fields.peer, "a");
    // A change marked as a peer's is answered without carrying it on.
    const direct = JSON.parse((await change(b.managerPort, "lb1", { status: "standby" }, { "X-Proxy-Node-Peer": "a" })).body) as PeerAnswer;
    assert.deepEqual(direct.peers, []);
    assert.equal(await statusOf(a.managerPort, "lb1"), "enabled", "a peer's change was carried on");
  });

  it("the peer header grants nothing: without the token a marked change is refused", async () => {
    const lb1 = await startMember("lb1");
    const { b } = await startPair([lb1]);
    const r = await change(b.managerPort, "lb1", { status: "stopped" }, { "X-Proxy-Node-Peer": "a", Authorization: "Bearer wrong-token-xyz" });
    assert.equal(r.status, 401);
    assert.equal(await statusOf(b.managerPort, "lb1"), "enabled");
  });

  for (const kind of ["refuses connections", "never completes a connect", "accepts and never answers"] as const) {
    it(`a peer that ${kind}: the change applies here and the answer names the peer and why, within seconds`, async () => {
      const lb1 = await startMember("lb1");
      const lb2 = await startMember("lb2");
      let peerPort: number;
      let cleanup = (): void => undefined;
      if (kind === "refuses connections") peerPort = await freePort();
      else if (kind === "never completes a connect") {
        const hole = await blackhole();
        peerPort = hole.port;
        cleanup = () => hole.close();
      } else {
        const sockets: net.Socket[] = [];
        const silent = net.createServer((s) => sockets.push(s));
        await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
        peerPort = (silent.address() as net.AddressInfo).port;
        cleanup = () => {
          for (const s of sockets) s.destroy();
          silent.close();
        };
      }
      try {
        const app = await startProxy(pairConfig("a", 0, [{ name: "b", port: peerPort }], [lb1, lb2]), new EventLog());
        const t0 = Date.now();
        const r = await change(app.managerPort, "lb2", { status: "disabled" });
        const ms = Date.now() - t0;
        assert.equal(r.status, 200);
        const answer = JSON.parse(r.body) as PeerAnswer;
        assert.equal(answer.peers.length, 1);
        assert.equal(answer.peers[0].name, "b");
        assert.equal(answer.peers[0].ok, false);
        assert.match(answer.peers[0].error ?? "", kind === "refuses connections" ? /ECONNREFUSED/ : /no answer within 2000 ms/);
        assert.ok(ms < 5000, `the operator waited ${ms} ms for a dead peer`);
        assert.equal((await request(app.port, { path: "/", headers: sticky("lb2") })).body, "lb1", "not applied here");
      } finally {
        cleanup();
      }
    });
  }

  it("a balancer that was down while lb2 was drained comes back with lb2 drained; with no peer up it starts from its config", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const pair = await startPair([lb1, lb2]);
    const { a, b } = pair;
    await b.app?.stop(0);

    const missed = JSON.parse((await change(a.managerPort, "lb2", { status: "draining", lbfactor: 5 })).body) as PeerAnswer;
    assert.equal(missed.peers[0].ok, false, "b is down and the answer says so");

    const b2 = await pair.start(b);
    assert.equal(await statusOf(b.managerPort, "lb2"), "draining");
    assert.equal((await members(b.managerPort)).members.find((m) => m.route === "lb2")?.lbfactor, 5);
    // Draining: no new client of b lands on lb2, its sticky clients still do.
    for (let i = 0; i < 6; i++) assert.equal((await request(b2.port, { path: "/" })).body, "lb1");
    assert.equal((await request(b2.port, { path: "/", headers: sticky("lb2") })).body, "lb2");

    // Both down, b first up again: nobody to ask, its config says enabled.
    await a.app?.stop(0);
    await b.app?.stop(0);
    await pair.start(b);
    assert.equal(await statusOf(b.managerPort, "lb2"), "enabled");
    assert.ok(b.log.events.some((e) => e.msg === "no peer answered; starting with the config's member statuses"));
  });

  it("which balancer holds the virtual address: API, page and metric", async () => {
    const lb1 = await startMember("lb1");
    // 127.0.0.1 is on this host's loopback; 192.0.2.10 (TEST-NET-1) is on none of its interfaces.
    const holder = await startProxy(pairConfig("balancer", 0, [{ name: "balancer2", port: await freePort() }], [lb1], "127.0.0.1"), new EventLog());
    const backup = await startProxy(pairConfig("balancer2", 0, [{ name: "balancer", port: await freePort() }], [lb1], "192.0.2.10"), new EventLog());

    const h = await members(holder.managerPort);
    assert.deepEqual(h.redundancy, {
      self: "balancer",
      virtualAddress: "127.0.0.1",
      holdsAddress: true,
      peers: [{ name: "balancer2", managerUrl: h.redundancy?.peers[0].managerUrl }],
    });
    assert.equal((await members(backup.managerPort)).redundancy?.holdsAddress, false);

    const page = async (port: number) => (await request(port, { path: "/", headers: { Authorization: "Bearer pair-token-123456" } })).body;
    const text = (html: string) => /<p id="address"[^>]*>([\s\S]*?)<\/p>/.exec(html)?.[1].replace(/<[^>]*>/g, "") ?? "";
    assert.match(text(await page(holder.managerPort)), /^balancer holds the virtual address 127\.0\.0\.1: clients reach this balancer\./);
    assert.match(text(await page(backup.managerPort)), /^balancer2 is the backup for 192\.0\.2\.10; the address is held by its peer \(balancer\)\./);

    const metric = async (port: number) =>
      /^proxy_node_holds_virtual_address (\d)$/m.exec(
        (await request(port, { path: "/metrics", headers: { Authorization: "Bearer pair-token-123456" } })).body,
      )?.[1];
    assert.equal(await metric(holder.managerPort), "1");
    assert.equal(await metric(backup.managerPort), "0");
  });

  it("a balancer without a peer shows no address line and no such metric", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(
      baseConfig([{ url: lb1.url, route: "lb1" }], { manager: { host: "127.0.0.1", port: 0, allow: ["127.0.0.0/8"], token: "pair-token-123456" } }),
    );
    const auth = { Authorization: "Bearer pair-token-123456" };
    assert.equal((await members(app.managerPort)).redundancy, null);
    assert.doesNotMatch((await request(app.managerPort, { path: "/", headers: auth })).body, /id="address"/);
    assert.doesNotMatch((await request(app.managerPort, { path: "/metrics", headers: auth })).body, /holds_virtual_address/);
  });
});
