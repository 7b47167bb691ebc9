// Issue 13: a member that stops answering connects (a host gone or cut off)
// costs a client at most the connect deadline, and health checks fail it in
// fall x interval + timeout, the connect included.
import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, request, closeAll, until } from "../helpers";
import { blackhole, Blackhole } from "../blackhole";
import { probe } from "../../src/health";
import { Member } from "../../src/members";

describe("fault: a member that no longer completes a connect", function () {
  this.timeout(30_000);
  let hole: Blackhole | undefined;
  afterEach(async () => {
    hole?.close();
    hole = undefined;
    await closeAll();
  });

  it("a health probe gives up within its timeout although the connect never completes", async () => {
    hole = await blackhole();
    const m = new Member({
      url: hole.url,
      host: "127.0.0.1",
      port: hole.port,
      route: "lb1",
      lbfactor: 1,
      retry: 10,
      status: "enabled",
      maxSockets: 1,
      maxQueue: 0,
    });
    const t0 = Date.now();
    const r = await probe(m, { path: "/health", intervalMs: 1000, expect: 200, rise: 1, fall: 1, timeoutMs: 300 });
    const took = Date.now() - t0;
    assert.equal(r.ok, false);
    assert.match(r.reason, /not even connected/);
    assert.ok(took < 1300, `the probe took ${took} ms with a 300 ms deadline`);
  });

  it("health checks take such a member out within fall x interval + timeout, and new clients never wait on it after that", async () => {
    hole = await blackhole();
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig(
        [
          { url: hole.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        { timeouts: { connectMs: 500 } },
        {
          healthCheck: { path: "/", intervalMs: 200, fall: 2, rise: 1, timeoutMs: 300 },
        },
      ),
    );
    const t0 = Date.now();
    await until(() => app.balancer.members[0].hcFail, "lb1 failed by the health checks", 5000);
    const detected = Date.now() - t0;
    assert.ok(detected <= 2 * 200 + 300 + 1000, `detected after ${detected} ms`);
    for (let i = 0; i < 5; i++) {
      const s = Date.now();
      const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb1" } });
      assert.equal(r.status, 200);
      assert.equal(r.body, "lb2");
      assert.ok(Date.now() - s < 300, "a request waited on the failed member");
    }
  });

  it("before detection, a pinned GET waits at most the connect deadline and is answered by another member", async () => {
    hole = await blackhole();
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig(
        [
          { url: hole.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        { timeouts: { connectMs: 500 } },
      ),
    );
    const t0 = Date.now();
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    const took = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb2");
    assert.ok(took < 500 + 1000, `the request took ${took} ms with a 500 ms connect deadline`);
  });
});
