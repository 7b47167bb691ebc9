// Issue 13: a member cut off from the network (`docker network disconnect`, a
// partition) sends no reset. A request written on a kept-alive connection to it
// is never answered, and new connects to it go unanswered too. proxy-node finds
// out within the stall check plus the connect deadline and resends an
// idempotent request elsewhere; a member that is merely slow (it still accepts
// connections) keeps its request.
import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, request, closeAll, sleep, until, MemberServer } from "../helpers";
import { fillAcceptQueue, pythonListener } from "../blackhole";
import type { ProxyNode } from "../../src/app";
import type { Pool } from "../../src/proxy/upstream";

// Serves one request on each of its first two connections and keeps them open,
// then reads and answers nothing more and accepts nothing more. Its accept
// queue (listen(4)) takes a reachability check's connect while the two are
// served, however slowly; cut() then fills it, and further SYNs are dropped.
const PY = [
  "import socket, time",
  "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
  's.bind(("127.0.0.1", 0)); s.listen(4)',
  "print(s.getsockname()[1], flush=True)",
  "kept = []",
  "for _ in range(2):",
  '    c, _ = s.accept(); buf = b""; kept.append(c)',
  '    while b"\\r\\n\\r\\n" not in buf: buf += c.recv(65536)',
  '    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nlb1")',
  "time.sleep(600)",
].join("\n");

interface CutOff {
  url: string;
  /** From now on nothing is accepted either: the accept queue is full and SYNs are dropped. */
  cut(): Promise<void>;
  close(): void;
}

async function memberToBeCutOff(): Promise<CutOff> {
  const { port, child } = await pythonListener(PY);
  const fillers: ReturnType<typeof fillAcceptQueue> = [];
  return {
    url: `http://127.0.0.1:${port}`,
    cut: async () => {
      fillers.push(...fillAcceptQueue(port, 8));
      await sleep(200);
    },
    close: () => {
      for (const f of fillers) f.destroy();
      child.kill();
    },
  };
}

// Alive but saturated: one connection at a time, `work` seconds per request,
// and an accept queue of one (listen(0)), so other clients fill it and further
// SYNs are dropped, as on an Apache whose workers are all busy and whose
// backlog is full.
function busyMemberPy(work: number): string {
  return [
    "import socket, time",
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
    's.bind(("127.0.0.1", 0)); s.listen(0)',
    "print(s.getsockname()[1], flush=True)",
    "while True:",
    '    c, _ = s.accept(); buf = b""',
    '    while b"\\r\\n\\r\\n" not in buf:',
    "        d = c.recv(65536)",
    "        if not d: break",
    "        buf += d",
    "    if not buf: c.close(); continue",
    `    time.sleep(${work})`,
    '    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\nbusy"); c.close()',
  ].join("\n");
}

describe("fault: a member cut off while a kept-alive connection to it is pooled", function () {
  this.timeout(60_000);
  let member: CutOff | undefined;
  const extra: Array<() => void> = [];
  afterEach(async () => {
    member?.close();
    member = undefined;
    for (const k of extra.splice(0)) k();
    await closeAll();
  });

  const CONNECT_MS = 500;
  const HEADERS_MS = 10_000;

  /** proxy-node in front of lb1 (at `lb1Url`) and a plain member lb2. */
  async function inFront(lb1Url: string, headersMs = HEADERS_MS): Promise<{ app: ProxyNode; lb2: MemberServer }> {
    const lb2 = await startMember("lb2");
    const members = [
      { url: lb1Url, route: "lb1" },
      { url: lb2.url, route: "lb2" },
    ];
    return { app: await startProxy(baseConfig(members, { timeouts: { connectMs: CONNECT_MS, headersMs } })), lb2 };
  }

  /** A Python member for this test, stopped after it. */
  async function pythonMember(src: string): Promise<number> {
    const { port, child } = await pythonListener(src);
    extra.push(() => child.kill());
    return port;
  }

  /** Fills the member's accept queue for the rest of this test. */
  function fill(port: number, count: number): void {
    const fillers = fillAcceptQueue(port, count);
    extra.push(() => fillers.forEach((f) => f.destroy()));
  }

  async function setUp(): Promise<{ port: number; lb2Seen: () => number; pool: Pool }> {
    member = await memberToBeCutOff();
    const { app, lb2 } = await inFront(member.url);
    // Two requests at once open the two connections that stay in the pool.
    const first = await Promise.all([0, 1].map(() => request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb1" } })));
    assert.deepEqual(
      first.map((r) => r.body),
      ["lb1", "lb1"],
    );
    await member.cut();
    return { port: app.port, lb2Seen: () => lb2.seen.length, pool: app.balancer.members[0].pool };
  }

  // What the client notices is being answered instead of waiting for the answer
  // timeout (10 s); the exact figure depends on the machine's load, so the bound is loose.
  const WELL_BEFORE_TIMEOUT = HEADERS_MS / 2;

  it("a pinned GET on the dead connection is answered by another member, well before the answer timeout", async () => {
    const { port, lb2Seen } = await setUp();
    const t0 = Date.now();
    const r = await request(port, { path: "/page", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    const took = Date.now() - t0;
    assert.equal(r.status, 200, `status ${r.status} after ${took} ms`);
    assert.equal(r.body, "lb2");
    assert.equal(lb2Seen(), 1);
    assert.ok(took < WELL_BEFORE_TIMEOUT, `the request took ${took} ms`);
  });

  it("a GET sent while that check runs is resent when the check fails, without a check of its own", async () => {
    const { port, pool } = await setUp();
    const first = request(port, { path: "/a", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    await until(() => pool.checkRunning, "the reachability check started", 5000);
    const second = await request(port, { path: "/b", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    assert.equal((await first).body, "lb2");
    assert.equal(second.body, "lb2");
    assert.equal(pool.reachabilityChecks, 1, "the second request waited for a check of its own");
  });

  it("a POST on the dead connection is never failed by the check nor resent (it may have reached the member): it keeps its own answer timeout", async () => {
    const { port, lb2Seen, pool } = await setUp();
    const t0 = Date.now();
    const r = await request(port, { method: "POST", path: "/form", headers: { Cookie: "BALANCEID=balancer.lb1", "Content-Length": "0" } });
    const took = Date.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(lb2Seen(), 0);
    assert.equal(pool.reachabilityChecks, 0, "a check ran for a request it may not fail");
    assert.ok(took >= HEADERS_MS - 50, `answered after ${took} ms, before its answer timeout`);
  });

  it("a request still waiting after a check found its member there is checked again, and resent once the member is gone", async () => {
    // Accepts one connection and answers nothing on it; its accept queue has room until the test fills it.
    const py = [
      "import socket, time",
      "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
      's.bind(("127.0.0.1", 0)); s.listen(2)',
      "print(s.getsockname()[1], flush=True)",
      "c, _ = s.accept()",
      "time.sleep(600)",
    ].join("\n");
    const memberPort = await pythonMember(py);
    const { app } = await inFront(`http://127.0.0.1:${memberPort}`, 20_000);
    const pool = app.balancer.members[0].pool;
    const get = request(app.port, { path: "/page", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    await until(() => pool.reachabilityChecks === 1 && !pool.checkRunning, "the first check to find the member", 5000);
    fill(memberPort, 5);
    const r = await get;
    assert.deepEqual([r.status, r.body], [200, "lb2"]);
    assert.equal(pool.reachabilityChecks, 2);
  });

  it("a saturated member (its accept queue full, one request at a time) keeps a POST it is working on: answered by it", async () => {
    const memberPort = await pythonMember(busyMemberPy(3));
    const { app, lb2 } = await inFront(`http://127.0.0.1:${memberPort}`);
    const post = request(app.port, { method: "POST", path: "/node/add", headers: { Cookie: "BALANCEID=balancer.lb1", "Content-Length": "0" } });
    await sleep(150);
    fill(memberPort, 3);
    const r = await post;
    assert.deepEqual([r.status, r.body], [200, "busy"]);
    assert.equal(lb2.seen.length, 0);
  });

  it("a member whose accept queue is full but that keeps answering on its other connection is not taken for gone: its slow GET stays with it", async () => {
    // Serves two kept-alive connections in threads: /slow answers after 3 s, anything else at once; accepts nothing more.
    // Its accept queue (listen(4)) takes a check's connect while the two are primed, however slowly; the fillers then fill it.
    const py = [
      "import socket, threading, time",
      "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
      's.bind(("127.0.0.1", 0)); s.listen(4)',
      "print(s.getsockname()[1], flush=True)",
      "def serve(c):",
      '    buf = b""',
      "    while True:",
      '        while b"\\r\\n\\r\\n" not in buf:',
      "            d = c.recv(65536)",
      "            if not d: return",
      "            buf += d",
      '        head, buf = buf.split(b"\\r\\n\\r\\n", 1)',
      '        slow = head.split(b" ")[1] == b"/slow"',
      "        if slow: time.sleep(3)",
      '        body = b"slow" if slow else b"fast"',
      '        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\n\\r\\n" + body)',
      "for _ in range(2):",
      "    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()",
      "time.sleep(600)",
    ].join("\n");
    const memberPort = await pythonMember(py);
    const { app, lb2 } = await inFront(`http://127.0.0.1:${memberPort}`);
    const pool = app.balancer.members[0].pool;
    const pinned = { Cookie: "BALANCEID=balancer.lb1" };
    const primed = await Promise.all([0, 1].map(() => request(app.port, { path: "/", headers: pinned })));
    assert.deepEqual(
      primed.map((r) => r.body),
      ["fast", "fast"],
    );
    fill(memberPort, 8);
    const slow = request(app.port, { path: "/slow", headers: pinned });
    let fast = 0;
    let going = true;
    const loop = (async () => {
      while (going) {
        if ((await request(app.port, { path: "/x", headers: pinned })).body === "fast") fast++;
        await sleep(100);
      }
    })();
    const r = await slow;
    going = false;
    await loop;
    assert.deepEqual([r.status, r.body], [200, "slow"]);
    assert.ok(pool.reachabilityChecks >= 1, "no check ran: the test did not make the member look cut off");
    assert.ok(fast > 0);
    assert.equal(lb2.seen.length, 0, "a request left its member, which was answering all along");
  });

  it("a slow member that still accepts connections keeps its request: it is answered once, by that member", async () => {
    let seen = 0;
    const slow = await startMember("lb1", (_req, res) => {
      seen++;
      setTimeout(() => res.end("lb1 slow"), 2000);
    });
    const { app, lb2 } = await inFront(slow.url);
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb1 slow");
    assert.equal(seen, 1);
    assert.equal(lb2.seen.length, 0);
  });
});
