// Issue 14, item 3: a request waiting for a member connection waits a bounded
// time in a bounded queue (timeouts.queueMs, members[].maxQueue), then gets
// 503, counted in /metrics, like HAProxy's `timeout queue`.
import { strict as assert } from "node:assert";
import type * as http from "node:http";
import { startMember, startProxy, baseConfig, request, closeAll, until, Reply } from "../helpers";

const TOKEN = "queue-test-token";

/** lb1 streams /slow for `holdMs` before ending it; anything else is answered at once. */
async function slowSetup(member: Record<string, unknown>, timeouts: Record<string, unknown> = {}) {
  const open = new Set<http.ServerResponse>();
  const lb1 = await startMember("lb1", (req, res) => {
    if (req.url !== "/slow") return void res.end("fast");
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.write("first part ");
    open.add(res);
    setTimeout(() => {
      open.delete(res);
      res.end("last part");
    }, 4000);
  });
  const app = await startProxy(
    baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1, ...member }], {
      timeouts,
      manager: { host: "127.0.0.1", port: 0, allow: ["127.0.0.0/8"], token: TOKEN },
    }),
  );
  // The one member connection is now held by a slowly streamed answer.
  const slow = request(app.port, { path: "/slow" });
  await until(() => open.size === 1, "the slow answer to start");
  return { app, slow, open };
}

async function queueMetric(port: number, reason: string): Promise<number> {
  const r = await request(port, { path: "/metrics", headers: { Authorization: `Bearer ${TOKEN}` } });
  const m = new RegExp(`^proxy_node_queue_refused_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(r.body);
  assert.ok(m, `no queue_refused_total{reason="${reason}"} in /metrics:\n${r.body}`);
  return Number(m[1]);
}

describe("security: bounded wait for a member connection", function () {
  this.timeout(20_000);
  afterEach(closeAll);

  it("requests queued behind a held connection get 503 after timeouts.queueMs, while the held answer still streams", async () => {
    const { app, slow, open } = await slowSetup({}, { queueMs: 300 });
    const waiting = await Promise.all([1, 2, 3].map(() => request(app.port, { path: "/other" })));
    assert.deepEqual(
      waiting.map((r) => r.status),
      [503, 503, 503],
    );
    assert.equal(open.size, 1, "the 503s came while the slow answer was still open, not after it");
    assert.equal(waiting[0].headers["retry-after"], "1");
    assert.equal(await queueMetric(app.managerPort, "timeout"), 3);
    assert.equal((await slow).body, "first part last part");
  });

  it("a full queue (maxQueue) answers 503 at once and counts it", async () => {
    const { app, slow, open } = await slowSetup({ maxQueue: 1 }, { queueMs: 2000 });
    const first = request(app.port, { path: "/other" });
    const overflow: Reply[] = await Promise.all([request(app.port, { path: "/other" }), request(app.port, { path: "/other" })]);
    assert.deepEqual(
      overflow.map((r) => r.status),
      [503, 503],
    );
    assert.equal(open.size, 1);
    assert.equal(await queueMetric(app.managerPort, "full"), 2);
    // The one that fitted in the queue still waits its turn and then times out.
    assert.equal((await first).status, 503);
    assert.equal(await queueMetric(app.managerPort, "timeout"), 1);
    await slow;
  });

  it("a queued request is served when the connection frees before queueMs", async () => {
    const lb1 = await startMember("lb1", (req, res) => setTimeout(() => res.end(req.url), 100));
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1 }], { timeouts: { queueMs: 5000 } }));
    const all = await Promise.all([1, 2, 3].map((i) => request(app.port, { path: `/r${i}` })));
    assert.deepEqual(
      all.map((r) => [r.status, r.body]),
      [
        [200, "/r1"],
        [200, "/r2"],
        [200, "/r3"],
      ],
    );
  });
});
