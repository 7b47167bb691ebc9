// A balancer with node:cluster workers (the cluster program renders "auto")
// paired with another: the primary talks to the peer, the workers route by it.
import { strict as assert } from "node:assert";
import { startMember, startProxy, request, closeAll, until, freePort } from "../helpers";
import { RunningBin, runBin } from "../bin";
import { EventLog, TOKEN, change, pairConfig, statusOf } from "./helpers";

describe("redundancy: a balancer with workers: 2", function () {
  this.timeout(60_000);
  let bin: RunningBin | null = null;

  afterEach(async () => {
    await bin?.stop();
    bin = null;
    await closeAll();
  });

  it("takes the peer's drain on start into every worker, and carries its own changes to the peer", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const aPort = await freePort();
    const bPort = await freePort();
    const a = await startProxy(pairConfig("a", aPort, [{ name: "b", port: bPort }], [lb1, lb2]), new EventLog());
    await change(aPort, "lb2", { status: "draining" });

    const port = await freePort();
    const b = (bin = runBin({
      workers: 2,
      listen: { host: "127.0.0.1", port },
      manager: { host: "127.0.0.1", port: bPort, allow: ["127.0.0.0/8"], token: TOKEN },
      redundancy: { self: "b", virtualAddress: "192.0.2.10", peers: [{ name: "a", managerUrl: `http://127.0.0.1:${aPort}` }] },
      log: { requests: false },
      balancer: { members: [lb1, lb2].map((m) => ({ url: m.url, route: m.route })) },
    }));
    await until(() => b.stderr().includes("proxy-node cluster started"), `cluster start: ${b.stderr()}`);

    assert.equal(await statusOf(bPort, "lb2"), "draining");
    // New clients, each on a new connection, spread over both workers: none to the drained lb2.
    for (let i = 0; i < 8; i++) assert.equal((await request(port, { path: "/" })).body, "lb1");

    const r = JSON.parse((await change(bPort, "lb2", { status: "disabled" })).body) as { peers: unknown };
    assert.deepEqual(r.peers, [{ name: "a", ok: true }]);
    assert.equal(await statusOf(aPort, "lb2"), "disabled");
    assert.equal((await request(a.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } })).body, "lb1");
  });
});
