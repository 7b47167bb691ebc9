// Issue 13: a member cut off from the network (`docker network disconnect`, a
// partition) sends no reset. A request written on a kept-alive connection to it
// is never answered, and new connects to it go unanswered too. proxy-node finds
// out within the stall check plus the connect deadline and resends an
// idempotent request elsewhere; a member that is merely slow (it still accepts
// connections) keeps its request.
import { strict as assert } from "node:assert";
import { spawn, ChildProcess } from "node:child_process";
import * as net from "node:net";
import { startMember, startProxy, baseConfig, request, closeAll, sleep, until } from "../helpers";
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
  const child: ChildProcess = spawn("python3", ["-c", PY], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.stdout?.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  const fillers: net.Socket[] = [];
  return {
    url: `http://127.0.0.1:${port}`,
    cut: async () => {
      for (let i = 0; i < 8; i++) fillers.push(net.connect(port, "127.0.0.1").on("error", () => undefined));
      await sleep(200);
    },
    close: () => {
      for (const f of fillers) f.destroy();
      child.kill();
    },
  };
}

describe("fault: a member cut off while a kept-alive connection to it is pooled", function () {
  this.timeout(30_000);
  let member: CutOff | undefined;
  afterEach(async () => {
    member?.close();
    member = undefined;
    await closeAll();
  });

  const CONNECT_MS = 500;
  const HEADERS_MS = 10_000;

  async function setUp(): Promise<{ port: number; lb2Seen: () => number; pool: Pool }> {
    member = await memberToBeCutOff();
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig(
        [
          { url: member.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        { timeouts: { connectMs: CONNECT_MS, headersMs: HEADERS_MS } },
      ),
    );
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

  it("a POST on the dead connection is not resent (it may have reached the member): 502, well before the answer timeout", async () => {
    const { port, lb2Seen } = await setUp();
    const t0 = Date.now();
    const r = await request(port, { method: "POST", path: "/form", headers: { Cookie: "BALANCEID=balancer.lb1", "Content-Length": "0" } });
    const took = Date.now() - t0;
    assert.equal(r.status, 502);
    assert.equal(lb2Seen(), 0);
    assert.ok(took < WELL_BEFORE_TIMEOUT, `the request took ${took} ms`);
  });

  it("a slow member that still accepts connections keeps its request: it is answered once, by that member", async () => {
    let seen = 0;
    const slow = await startMember("lb1", (_req, res) => {
      seen++;
      setTimeout(() => res.end("lb1 slow"), 2000);
    });
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig(
        [
          { url: slow.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        { timeouts: { connectMs: CONNECT_MS, headersMs: HEADERS_MS } },
      ),
    );
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb1 slow");
    assert.equal(seen, 1);
    assert.equal(lb2.seen.length, 0);
  });
});
