// workers > 1: node:cluster workers proxy, the primary owns manager and health checks.
import { strict as assert } from "node:assert";
import * as net from "node:net";
import { startMember, request, closeAll, until, freePort } from "../helpers";
import { RunningBin, runBin } from "../bin";

const TOKEN = "cluster-token-1";

describe("cli: cluster mode (workers: 2)", function () {
  this.timeout(60_000);
  let bin: RunningBin | null = null;

  afterEach(async () => {
    await bin?.stop();
    bin = null;
    await closeAll();
  });

  it("sticky routing, live manager changes reach every worker, counters are summed, SIGTERM stops all", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const port = await freePort();
    const mport = await freePort();
    const b = (bin = runBin({
      workers: 2,
      listen: { host: "127.0.0.1", port },
      manager: { host: "127.0.0.1", port: mport, allow: ["127.0.0.0/8"], token: TOKEN },
      log: { requests: false },
      balancer: {
        members: [
          { url: lb1.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
      },
    }));
    const c = b.child;
    await until(() => b.stderr().includes("proxy-node cluster started"), `cluster start: ${b.stderr()}`);

    // Cookie-less first: sticky requests also advance byrequests (as in Apache) and would skew this.
    // Each request is a new client on a new connection; the workers take turns
    // and start at different points of the sequence, so the spread stays within one.
    const count = { lb1: 0, lb2: 0 };
    for (let i = 0; i < 10; i++) {
      count[(await request(port, { path: "/" })).body as "lb1" | "lb2"]++;
      assert.ok(Math.abs(count.lb1 - count.lb2) <= 1, `uneven spread after ${i + 1} new clients: ${JSON.stringify(count)}`);
    }
    for (let i = 0; i < 10; i++) await request(port, { path: "/" });
    const sticky = { Cookie: "BALANCEID=balancer.lb2" };
    for (let i = 0; i < 20; i++) assert.equal((await request(port, { path: "/", headers: sticky })).body, "lb2");

    const auth = { Authorization: `Bearer ${TOKEN}` };
    const members = JSON.parse((await request(mport, { path: "/api/members", headers: auth })).body) as { members: Array<{ route: string; requests: number }> };
    assert.equal(
      members.members.reduce((a, m) => a + m.requests, 0),
      40,
    );

    const change = await request(mport, {
      method: "POST",
      path: "/api/members/lb2",
      headers: { ...auth, "Content-Type": "application/json" },
      body: '{"status":"disabled"}',
    });
    assert.equal(change.status, 200);
    // Fresh connections spread over both workers; every one must see lb2 disabled.
    for (let i = 0; i < 30; i++) assert.equal((await request(port, { path: "/", headers: sticky })).body, "lb1");

    const exited = new Promise<number | null>((r) => c.once("exit", (code) => r(code)));
    c.kill("SIGTERM");
    assert.equal(await exited, 0);
    await assert.rejects(request(port, { path: "/" }));
  });

  it("a port still held at first (by the engine it replaces) is tried again until it is free; then the workers serve and the manager starts", async () => {
    const lb1 = await startMember("lb1");
    const port = await freePort();
    const mport = await freePort();
    // What Apache is during an engine switch: the client port, held by someone else.
    const holder = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => holder.listen(port, "127.0.0.1", r));
    const b = (bin = runBin({
      workers: 2,
      listen: { host: "127.0.0.1", port },
      manager: { host: "127.0.0.1", port: mport, allow: ["127.0.0.0/8"], token: TOKEN },
      log: { requests: false },
      balancer: { members: [{ url: lb1.url, route: "lb1" }] },
    }));
    await until(() => (b.stderr().match(/client port in use; trying again/g) ?? []).length >= 2, `binding the taken port: ${b.stderr()}`);
    await new Promise<void>((r) => holder.close(() => r()));
    await until(() => b.stderr().includes("proxy-node cluster started"), `cluster start once the port is free: ${b.stderr()}`);
    assert.equal((await request(port, { path: "/" })).body, "lb1");
    const members = await request(mport, { path: "/api/members", headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(members.status, 200, "the manager did not start");
  });
});
