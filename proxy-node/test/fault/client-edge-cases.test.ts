// Adversarial edge cases of the client side (client.ts on raw net sockets)
// and how it works with the Exchange (handler.ts): large uploads under
// backpressure, clients that leave or stall, members that answer early, 100-continue
// with failover, pipelining, graceful stop, upgrades, odd member answers. Each
// test checks what a client or an operator would see on the wire or in the
// counters, and that the counters settle (nothing in flight, no member busy).
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as http from "node:http";
import * as net from "node:net";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import type { AddressInfo } from "node:net";
import type { ProxyNode } from "../../src/app";
import { startMember, startProxy, baseConfig, closeAll, sleep, until, request } from "../helpers";
import { RawClient, rawMember, closeRawMembers, destroyRawClients, header, show } from "../raw-http";
import { recordFigure } from "../../../test/support/figures";

// ---------------------------------------------------------------------------
// Wire helpers (the raw client and member are in ../raw-http; this file waits
// 4 s for answers and closes, where the shared client's default is 3 s)

const cleanups: Array<() => void | Promise<void>> = [];

/** A node http member whose handler gets the request unread (for streaming bodies). */
async function streamMember(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ url: string; server: http.Server; open: () => number }> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer(handler);
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, open: () => sockets.size };
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/**
 * Collects exceptions thrown from socket handlers during the test (in
 * production they kill the process) instead of letting mocha pin them on
 * whatever runs next; restored after the test.
 */
function collectUncaught(): Error[] {
  const errors: Error[] = [];
  const saved = process.listeners("uncaughtException");
  process.removeAllListeners("uncaughtException");
  const onErr = (e: Error): void => void errors.push(e);
  process.on("uncaughtException", onErr);
  cleanups.push(() => {
    process.off("uncaughtException", onErr);
    for (const l of saved) process.on("uncaughtException", l);
  });
  return errors;
}

/** Resolves to `p`'s value, or to `fallback` if it does not settle within `ms` (or rejects). */
function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(fallback);
      },
    );
  });
}

// ---------------------------------------------------------------------------
// Counters

function countersText(app: ProxyNode): string {
  const m = app.metrics;
  return `requests=${m.requests} inFlight=${m.inFlight} byClass=${JSON.stringify(m.byClass.slice(1))} busy=${JSON.stringify(app.balancer.members.map((x) => x.busy))}`;
}

/**
 * Waits until nothing is in flight and no member is busy, then checks that
 * every request counted got exactly one status counted.
 */
async function assertSettled(app: ProxyNode, what = ""): Promise<void> {
  const ok = (): boolean => app.metrics.inFlight === 0 && app.balancer.members.every((m) => m.busy === 0);
  await until(ok, "counters to settle", 3000).catch(() => undefined);
  assert.ok(ok(), `${what}counters did not settle: ${countersText(app)}`);
  const answered = app.metrics.byClass.reduce((a, b) => a + b, 0);
  assert.equal(answered, app.metrics.requests, `${what}every request counted once by status class: ${countersText(app)}`);
}

// ---------------------------------------------------------------------------
// Upload helpers

/** Deterministic pseudo-random bytes, `chunk` at a time (AES-CTR over zeros). */
function byteStream(seed: string): (n: number) => Buffer {
  const key = crypto.createHash("sha256").update(seed).digest().subarray(0, 16);
  const cipher = crypto.createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

/** Writes `total` bytes of the stream to the socket with backpressure (chunked if asked); returns their sha256. */
async function upload(sock: net.Socket, total: number, chunked: boolean, seed: string, stopAfter = Infinity): Promise<string> {
  const next = byteStream(seed);
  const hash = crypto.createHash("sha256");
  let sent = 0;
  const CH = 64 * 1024;
  while (sent < total && sent < stopAfter && !sock.destroyed) {
    const n = Math.min(CH, total - sent);
    const b = next(n);
    hash.update(b);
    sent += n;
    let ok: boolean;
    if (chunked) {
      sock.write(`${n.toString(16)}\r\n`);
      sock.write(b);
      ok = sock.write("\r\n");
    } else ok = sock.write(b);
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          sock.off("drain", done);
          sock.off("close", done);
          resolve();
        };
        sock.on("drain", done);
        sock.on("close", done);
      });
    }
  }
  if (chunked && sent >= total && !sock.destroyed) sock.write("0\r\n\r\n");
  return hash.digest("hex");
}

let gcFn: (() => void) | null = null;
/** A full GC, so memory figures show live buffers rather than garbage. */
function gc(): void {
  if (gcFn === null) {
    v8.setFlagsFromString("--expose-gc");
    gcFn = vm.runInNewContext("gc") as () => void;
  }
  gcFn();
}

function memNow(): { rss: number; arrayBuffers: number } {
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, arrayBuffers: m.arrayBuffers };
}

/**
 * Memory after earlier work has been let go: GC, a turn for closes to land, GC
 * again. The pause also lets V8 finish freeing array buffers, which it does on
 * a background thread after the GC returns (measured right after a single GC,
 * the upload's own garbage showed up as 13-20 MB "held" in 2 of 10 runs).
 */
async function baselineMem(): Promise<{ rss: number; arrayBuffers: number }> {
  memNow();
  await sleep(100);
  return memNow();
}

const MB = 1024 * 1024;

/**
 * A member that waits `stallMs` after the head before reading the body, then
 * hashes it and answers "<bytes> <sha256>". `onStallEnd` is awaited at the end
 * of the stall, before reading starts (so a measurement there sees the stall).
 */
async function slowHashMember(
  stallMs: number,
  onStallEnd: () => Promise<void>,
): Promise<{ url: string; server: http.Server; open: () => number; bodies: Array<{ bytes: number; sha: string; complete: boolean }> }> {
  const bodies: Array<{ bytes: number; sha: string; complete: boolean }> = [];
  const m = await streamMember((req, res) => {
    req.pause();
    const rec = { bytes: 0, sha: "", complete: false };
    bodies.push(rec);
    setTimeout(async () => {
      await onStallEnd();
      const h = crypto.createHash("sha256");
      req.on("data", (c: Buffer) => {
        rec.bytes += c.length;
        h.update(c);
      });
      req.on("end", () => {
        rec.sha = h.digest("hex");
        rec.complete = true;
        const body = `${rec.bytes} ${rec.sha}`;
        res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": String(body.length) });
        res.end(body);
      });
      req.resume();
    }, stallMs);
  });
  return { ...m, bodies };
}

// ---------------------------------------------------------------------------

describe("fault: client-side edge cases", () => {
  afterEach(async () => {
    destroyRawClients();
    await closeRawMembers();
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
    await closeAll();
  });

  // ---- request body streaming ------------------------------------------------

  for (const chunked of [false, true]) {
    it(`a 50 MB ${chunked ? "chunked" : "Content-Length"} upload to a member that stalls before reading arrives intact, and the proxy does not buffer it`, async function () {
      this.timeout(20_000);
      const TOTAL = 50 * MB;
      let atStall: { rss: number; arrayBuffers: number } | null = null;
      const member = await slowHashMember(1500, async () => {
        atStall = await baselineMem();
      });
      const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
      const before = await baselineMem();
      const c = new RawClient(app.port);
      await c.connected();
      const framing = chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${TOTAL}`;
      await c.send(`POST /upload HTTP/1.1\r\nHost: x\r\n${framing}\r\n\r\n`);
      const sha = await upload(c.socket, TOTAL, chunked, "big-upload");
      const [r] = await c.responses(1, 15_000);
      assert.equal(r.status, 200, show(c.text));
      assert.equal(r.body, `${TOTAL} ${sha}`, "the member got the body intact");
      assert.ok(atStall !== null);
      const grownAB = (atStall as { arrayBuffers: number }).arrayBuffers - before.arrayBuffers;
      const grownRss = (atStall as { rss: number }).rss - before.rss;
      recordFigure(`proxy-node: MB held during a stalled 50 MB ${chunked ? "chunked" : "CL"} upload`, grownAB / MB);
      // With backpressure, what is held while the member does not read is a few socket buffers.
      assert.ok(grownAB < 12 * MB, `buffers held while the member stalled grew by ${(grownAB / MB).toFixed(1)} MB of a ${TOTAL / MB} MB upload`);
      assert.ok(grownRss < 30 * MB, `rss grew by ${(grownRss / MB).toFixed(1)} MB while the member stalled`);
      await assertSettled(app);
    });
  }

  it("a 50 MB upload queued behind another request (maxSockets 1) to a stalling member is not buffered by the proxy either", async function () {
    this.timeout(20_000);
    const TOTAL = 50 * MB;
    let atStall: { rss: number; arrayBuffers: number } | null = null;
    let first = true;
    const member = await streamMember((req, res) => {
      if (req.url === "/first") {
        req.resume();
        // Holds the only connection while the upload's first bytes pile up in the proxy.
        setTimeout(() => res.end("first"), 300);
        return;
      }
      req.pause();
      const h = crypto.createHash("sha256");
      let bytes = 0;
      setTimeout(async () => {
        if (first) atStall = await baselineMem();
        first = false;
        req.on("data", (c: Buffer) => {
          bytes += c.length;
          h.update(c);
        });
        req.on("end", () => res.end(`${bytes} ${h.digest("hex")}`));
        req.resume();
      }, 1500);
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1", maxSockets: 1 }]));
    const a = new RawClient(app.port);
    await a.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    await sleep(50);
    const before = await baselineMem();
    const c = new RawClient(app.port);
    await c.connected();
    await c.send(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${TOTAL}\r\n\r\n`);
    const sha = await upload(c.socket, TOTAL, false, "queued-upload");
    const [r] = await c.responses(1, 15_000);
    assert.equal(r.body, `${TOTAL} ${sha}`, "the member got the body intact");
    assert.equal((await a.responses(1, 4000))[0].body, "first");
    assert.ok(atStall !== null);
    const grownAB = (atStall as { arrayBuffers: number }).arrayBuffers - before.arrayBuffers;
    recordFigure("proxy-node: MB held during a stalled 50 MB upload queued for a member connection", grownAB / MB);
    assert.ok(grownAB < 12 * MB, `buffers held while the member stalled grew by ${(grownAB / MB).toFixed(1)} MB of a ${TOTAL / MB} MB upload`);
    await assertSettled(app);
  });

  // ---- clients that leave ---------------------------------------------------

  it("a client that aborts mid-upload: the member connection is closed, counters settle (499), and the next request works", async function () {
    this.timeout(10_000);
    let memberSawClose = false;
    let memberGotEnd = false;
    const member = await streamMember((req, res) => {
      if (req.method === "GET") {
        req.resume();
        return void res.end("ok");
      }
      req.on("data", () => undefined);
      req.on("end", () => (memberGotEnd = true));
      req.on("close", () => (memberSawClose = true));
      res.on("close", () => (memberSawClose = true));
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.connected();
    await c.send(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${50 * MB}\r\n\r\n`);
    await upload(c.socket, 50 * MB, false, "abort", 5 * MB);
    await until(() => app.balancer.members[0].busy === 1, "the upload to reach the member");
    c.destroy();
    await until(() => memberSawClose, "the member to see its connection closed", 3000).catch(() => undefined);
    assert.ok(memberSawClose, "the member connection stays open after the client left");
    assert.equal(memberGotEnd, false, "the member got a complete body");
    await assertSettled(app);
    assert.equal(app.metrics.byClass[4], 1, `the abort is counted as 499: ${countersText(app)}`);
    await until(() => member.open() === 0, "no member connection left", 3000).catch(() => undefined);
    assert.equal(member.open(), 0, "a member connection is left open");
    const r = await request(app.port, { path: "/after" });
    assert.deepEqual([r.status, r.body], [200, "ok"]);
    await assertSettled(app);
  });

  it("a client that sends a GET and closes before the answer: counters settle and the pooled member connection serves the next request correctly", async () => {
    let n = 0;
    const lb1 = await startMember("lb1", (req, res) => {
      const i = ++n;
      setTimeout(
        () => {
          const body = `answer ${i} for ${req.url}`;
          res.writeHead(200, { "Content-Length": String(body.length) });
          res.end(body);
        },
        req.url === "/slow" ? 300 : 0,
      );
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1 }]));
    const c = new RawClient(app.port);
    await c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => lb1.seen.length === 1, "the member to get the request");
    c.destroy();
    await sleep(400);
    await assertSettled(app);
    for (const p of ["/next1", "/next2"]) {
      const r = await request(app.port, { path: p });
      assert.equal(r.status, 200);
      assert.match(r.body, new RegExp(`for ${p}$`), "an answer meant for another request");
    }
    await assertSettled(app);
  });

  it("a client reset while a large answer streams: the member connection is not reused mid-answer, the next request gets its own answer", async () => {
    // An answer far larger than every socket buffer on the way (loopback's
    // receive buffer alone may grow to 32 MiB), streamed with backpressure, so it
    // is still streaming whatever the kernel's settings when the client resets.
    const chunk = Buffer.alloc(MB, "x");
    const lb1 = await startMember("lb1", (req, res) => {
      if (req.url !== "/big") {
        const body = `small ${req.url}`;
        res.writeHead(200, { "Content-Length": String(body.length) });
        res.end(body);
        return;
      }
      res.writeHead(200, { "Content-Length": String(1024 * MB) });
      let sent = 0;
      const more = (): void => {
        while (!res.destroyed && sent < 1024 && res.write(chunk)) sent++;
      };
      res.on("drain", more);
      more();
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1 }]));
    const c = new RawClient(app.port);
    c.socket.pause();
    await c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => app.metrics.inFlight === 1 && lb1.seen.length === 1, "the answer to start");
    await sleep(100);
    c.socket.resetAndDestroy();
    await assertSettled(app);
    const r = await request(app.port, { path: "/after" });
    assert.deepEqual([r.status, r.body], [200, "small /after"]);
    await assertSettled(app);
  });

  it("a client that sends a complete POST and half-closes gets its answer (as a GET does)", async () => {
    const lb1 = await startMember("lb1", (_req, res, body) => {
      const answer = `got ${body}`;
      res.writeHead(200, { "Content-Length": String(answer.length) });
      res.end(answer);
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port, { allowHalfOpen: true });
    await c.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    c.socket.end();
    await c.waitClosed(3000);
    const { responses } = c.parsed();
    await sleep(100);
    assert.equal(
      responses.length,
      1,
      `expected the answer, got ${show(c.text)} (connection ${c.closed ? `closed: ${c.error ?? "FIN"}` : "open"}); meanwhile the member got ${JSON.stringify(lb1.seen.map((x) => `${x.method} ${x.url} ${x.body}`))}; ${countersText(app)}`,
    );
    assert.equal(responses[0].body, "got hello");
    await assertSettled(app);
  });

  // ---- members that answer early --------------------------------------------

  it("a member answering 413 while the client still uploads: the client reads the whole answer, then the connection closes without a reset", async function () {
    this.timeout(10_000);
    const answer = "upload refused: too large";
    const member = await rawMember((sock) => {
      let got = "";
      let answered = false;
      sock.on("data", (d: Buffer) => {
        if (answered) return;
        got += d.toString("latin1");
        if (!got.includes("\r\n\r\n")) return;
        answered = true;
        // Answer before reading the body, then close our side, still draining what comes.
        sock.end(`HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: ${answer.length}\r\nConnection: close\r\n\r\n${answer}`);
      });
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.connected();
    await c.send(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${20 * MB}\r\n\r\n`);
    void upload(c.socket, 20 * MB, false, "early-413");
    const [r] = await c.responses(1, 5000);
    assert.equal(r.status, 413);
    assert.equal(r.body, answer);
    assert.ok(await c.waitClosed(5000), "the proxy keeps the connection open after an answer to an unread upload");
    assert.notEqual(c.error, "ECONNRESET", `the client was reset (after ${c.received} bytes received)`);
    await assertSettled(app);
    assert.equal(app.metrics.byClass[4], 1, countersText(app));
  });

  it("an answer given before the request body was read announces Connection: close, since the proxy then closes the connection", async () => {
    const problems: string[] = [];
    // 1. No member usable: 503 for a POST whose body was never asked for (Expect: 100-continue).
    {
      const app = await startProxy(baseConfig([{ url: "http://127.0.0.1:9", route: "lb1", status: "disabled" }]));
      const c = new RawClient(app.port);
      await c.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
      const [r] = await c.responses(1, 4000);
      assert.equal(r.status, 503);
      const closed = await c.waitClosed(3000);
      if (closed && !/\bclose\b/i.test(header(r, "connection") ?? ""))
        problems.push(`503 before the body: connection closed, but the answer said ${show(r.head)}`);
    }
    // 2. The member answers before reading the body.
    {
      const member = await rawMember((sock) => {
        let got = "";
        sock.on("data", (d: Buffer) => {
          got += d.toString("latin1");
          if (got.includes("\r\n\r\n") && !got.includes("answered")) {
            got += "answered";
            sock.write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope");
          }
        });
      });
      const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
      const c = new RawClient(app.port);
      await c.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npart of the body");
      const [r] = await c.responses(1, 4000);
      assert.equal(r.status, 401);
      const closed = await c.waitClosed(3000);
      if (closed && !/\bclose\b/i.test(header(r, "connection") ?? ""))
        problems.push(`401 before the body: connection closed, but the answer said ${show(r.head)}`);
    }
    assert.deepEqual(problems, []);
  });

  // ---- Expect: 100-continue --------------------------------------------------

  it('Expect: 100-continue when the first member refuses the connection: retried on the next, "100 Continue", body delivered', async () => {
    const lb1 = await startMember("lb1", (_req, res, body) => {
      const answer = `lb1 got ${body}`;
      res.writeHead(200, { "Content-Length": String(answer.length) });
      res.end(answer);
    });
    const dead = await deadPort();
    const app = await startProxy(
      baseConfig([
        { url: `http://127.0.0.1:${dead}`, route: "dead" },
        { url: lb1.url, route: "lb1" },
      ]),
    );
    const c = new RawClient(app.port);
    await c.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    await until(() => c.text.includes("\r\n\r\n") || c.closed, "an answer to the head", 4000).catch(() => undefined);
    assert.match(c.text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, `expected "100 Continue" before the body: ${show(c.text)}`);
    await c.send("hello");
    const [r] = await c.responses(1, 4000);
    assert.deepEqual([r.status, r.body], [200, "lb1 got hello"]);
    assert.equal(app.metrics.retries, 1, "the dead member was tried first");
    assert.equal(c.closed, false);
    await assertSettled(app);
  });

  it("Expect: 100-continue with no member available: 503 without the client having to send the body", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", status: "disabled" }]));
    const c = new RawClient(app.port);
    await c.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    const [r] = await c.responses(1, 4000);
    assert.equal(r.status, 503, show(c.text));
    assert.ok(!c.text.startsWith("HTTP/1.1 100"), `"100 Continue" sent with no member to take the body: ${show(c.text)}`);
    assert.equal(header(r, "retry-after"), "1");
    assert.equal(lb1.seen.length, 0);
    await assertSettled(app);
  });

  // ---- slow clients ----------------------------------------------------------

  it("slow loris: a head dribbled one byte at a time forever gets 408 after clientHeadersMs and is closed", async function () {
    this.timeout(10_000);
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { clientHeadersMs: 500 } }));
    const c = new RawClient(app.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Dribble: ");
    const t0 = Date.now();
    while (!c.closed && Date.now() - t0 < 5000) {
      await c.send("a");
      await sleep(40);
    }
    assert.ok(c.closed, "the dribbling client is never cut");
    assert.match(c.text, /^HTTP\/1\.1 408 /, show(c.text));
    assert.equal(lb1.seen.length, 0);
    await assertSettled(app);
    assert.equal(app.metrics.byClass[4], 1, countersText(app));
  });

  it("slow loris: a chunked body dribbled slower than clientRequestMs gets 408, the member connection is closed, counters settle", async function () {
    this.timeout(10_000);
    let memberClosed = false;
    const member = await streamMember((req) => {
      req.resume();
      req.on("close", () => (memberClosed = true));
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }], { timeouts: { clientRequestMs: 600 } }));
    const c = new RawClient(app.port);
    await c.send("POST /slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    const t0 = Date.now();
    while (!c.closed && Date.now() - t0 < 5000) {
      await c.send("1\r\na\r\n");
      await sleep(100);
    }
    assert.ok(c.closed, "the dribbling upload is never cut");
    assert.match(c.text, /^HTTP\/1\.1 408 /, show(c.text));
    await until(() => memberClosed, "the member to see the request end", 3000).catch(() => undefined);
    assert.ok(memberClosed, "the member connection stays open");
    await assertSettled(app);
  });

  it("many idle connections: used ones are closed after keepAliveMs, unused ones after clientHeadersMs", async function () {
    this.timeout(10_000);
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { keepAliveMs: 400, clientHeadersMs: 600 } }));
    const used: RawClient[] = [];
    const unused: RawClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = new RawClient(app.port);
      await c.send(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      used.push(c);
      unused.push(new RawClient(app.port));
    }
    for (const c of used) assert.equal((await c.responses(1, 4000))[0].status, 200);
    await until(() => used.every((c) => c.closed) && unused.every((c) => c.closed), "idle connections to be closed", 4000).catch(() => undefined);
    assert.equal(used.filter((c) => !c.closed).length, 0, "used idle connections left open");
    assert.equal(unused.filter((c) => !c.closed).length, 0, "never-used connections left open");
    assert.equal((app.server as NonNullable<ProxyNode["server"]>).connections, 0);
    assert.deepEqual(
      used.filter((c) => c.error !== null).map((c) => c.error),
      [],
    );
    await assertSettled(app);
  });

  it("slow loris: a client sending only empty lines after a request is closed after keepAliveMs", async function () {
    this.timeout(10_000);
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { keepAliveMs: 400 } }));
    const c = new RawClient(app.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await c.responses(1, 4000);
    const t0 = Date.now();
    while (!c.closed && Date.now() - t0 < 4000) {
      await c.send("\r\n");
      await sleep(50);
    }
    assert.ok(c.closed, "empty lines keep the connection open forever");
    await assertSettled(app);
  });

  // ---- graceful stop --------------------------------------------------------------

  it("stop(): an in-flight slow request completes with Connection: close, an idle keep-alive connection is closed at once, stop resolves", async function () {
    this.timeout(10_000);
    const lb1 = await startMember("lb1", (req, res) => {
      setTimeout(
        () => {
          const body = `done ${req.url}`;
          res.writeHead(200, { "Content-Length": String(body.length) });
          res.end(body);
        },
        req.url === "/slow" ? 700 : 0,
      );
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const idle = new RawClient(app.port);
    await idle.send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
    await idle.responses(1, 4000);
    const busy = new RawClient(app.port);
    await busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => lb1.seen.length === 2, "the slow request to reach the member");
    const t0 = Date.now();
    let stoppedAt = 0;
    const stopped = app.stop(4000).then(() => (stoppedAt = Date.now() - t0));
    await until(() => idle.closed, "the idle connection to close", 1000).catch(() => undefined);
    assert.ok(idle.closed, "the idle keep-alive connection was not closed when stop began");
    assert.equal(busy.closed, false, "the in-flight request was cut");
    const [r] = await busy.responses(1, 3000);
    assert.deepEqual([r.status, r.body], [200, "done /slow"]);
    assert.match(header(r, "connection") ?? "", /^close$/i, show(r.head));
    assert.ok(await busy.waitClosed(3000), "the connection stays open after the last answer");
    await until(() => stoppedAt > 0, "stop() to resolve", 5000).catch(() => undefined);
    assert.ok(stoppedAt > 0 && stoppedAt < 3500, `stop() resolved after ${stoppedAt || "more than 5000"} ms, with nothing left in flight`);
    await stopped;
    assert.equal(app.metrics.inFlight, 0);
  });

  // ---- pipelining -------------------------------------------------------------------

  function echoMember(): ReturnType<typeof startMember> {
    return startMember("lb1", (req, res, body) => {
      const answer = `${req.method} ${req.url}${body ? ` body=${body}` : ""}`;
      res.writeHead(200, { "Content-Length": String(answer.length) });
      res.end(answer);
    });
  }

  it("pipelined: a refused absolute-form request in the middle gets 400 in its place, the others are served in order", async () => {
    const lb1 = await echoMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(3, 4000);
    assert.deepEqual(
      rs.map((r) => [r.status, r.status === 200 ? r.body : ""]),
      [
        [200, "GET /a"],
        [400, ""],
        [200, "GET /c"],
      ],
    );
    assert.deepEqual(
      lb1.seen.map((s) => s.url),
      ["/a", "/c"],
    );
    await assertSettled(app);
  });

  it("pipelined: a POST with a body in the middle (Content-Length and chunked): each body reaches its request, all served in order", async () => {
    const lb1 = await echoMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
        "GET /d HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const rs = await c.responses(4, 4000);
    assert.deepEqual(
      rs.map((r) => r.body),
      ["GET /a", "POST /b body=hello", "POST /c body=abc", "GET /d"],
    );
    assert.equal(c.parsed().rest, "");
    await assertSettled(app);
  });

  it("pipelined: a request after one with Connection: close is not served", async () => {
    const lb1 = await echoMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.ok(await c.waitClosed(4000), "the connection stays open after Connection: close");
    const { responses, rest } = c.parsed();
    assert.deepEqual(
      responses.map((r) => r.body),
      ["GET /a"],
    );
    assert.equal(rest, "");
    await sleep(50);
    assert.deepEqual(
      lb1.seen.map((s) => s.url),
      ["/a"],
    );
    await assertSettled(app);
  });

  it("pipelined: a refused request with a body in the middle: its body is not read as a request, and nothing after it is lost silently", async () => {
    const lb1 = await echoMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    // The body looks like a request: it must never reach a member.
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    await c.send(
      `GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST http://evil.example/ HTTP/1.1\r\nHost: x\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}GET /c HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    await until(() => c.finals().length >= 3 || c.closed, "answers", 3000).catch(() => undefined);
    await sleep(100);
    const rs = c.finals();
    assert.deepEqual(
      rs.slice(0, 2).map((r) => r.status),
      [200, 400],
      show(c.text),
    );
    assert.ok(!lb1.seen.some((s) => s.url === "/smuggled"), "the refused request's body reached a member as a request");
    if (rs.length === 2) {
      // Closing instead of serving /c is allowed, but the client must have been told.
      assert.ok(c.closed, `/c neither answered nor the connection closed: ${show(c.text)}`);
      assert.match(
        header(rs[1], "connection") ?? "",
        /close/i,
        `the 400 did not say Connection: close, yet /c was dropped and the connection closed: ${show(rs[1].head)}`,
      );
    } else {
      assert.equal(rs[2].body, "GET /c");
    }
    await assertSettled(app);
  });

  // ---- WebSocket ----------------------------------------------------------------------

  async function wsMember(): Promise<{ url: string; received: () => string; upgraded: () => number; open: () => number }> {
    let received = "";
    let upgraded = 0;
    const m = await streamMember((_req, res) => res.end("plain"));
    m.server.on("upgrade", (_req, socket: net.Socket, head: Buffer) => {
      upgraded++;
      socket.on("error", () => undefined);
      received += head.toString("latin1");
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
      socket.on("data", (d: Buffer) => {
        received += d.toString("latin1");
        socket.write(`echo:${d.toString("latin1")}`);
      });
    });
    return { url: m.url, received: () => received, upgraded: () => upgraded, open: m.open };
  }

  const WS_HEAD =
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

  it("WebSocket: bytes the client sent right after the upgrade head, in the same packet, reach the member", async () => {
    const m = await wsMember();
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send(`${WS_HEAD}early-frame`);
    await until(() => c.text.includes("101"), "the 101", 3000).catch(() => undefined);
    assert.match(c.text, /^HTTP\/1\.1 101 /, show(c.text));
    await until(() => m.received().includes("early-frame"), "the early bytes at the member", 3000).catch(() => undefined);
    assert.equal(m.received(), "early-frame");
    await c.send("later");
    await until(() => c.text.includes("echo:later"), "the echo", 3000).catch(() => undefined);
    assert.ok(c.text.includes("echo:later"), show(c.text));
  });

  it("WebSocket: an upgrade completed during stop() does not outlive stop()", async function () {
    this.timeout(10_000);
    const m = await wsMember();
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    // Half a head before stop: the connection is not idle, so it is let finish.
    await c.send(WS_HEAD.slice(0, 20));
    await sleep(50);
    const t0 = Date.now();
    let stoppedAt = 0;
    const stopped = app.stop(1500).then(() => (stoppedAt = Date.now() - t0));
    await sleep(50);
    await c.send(WS_HEAD.slice(20));
    await until(() => c.text.includes("\r\n\r\n") || c.closed, "an answer", 3000).catch(() => undefined);
    await stopped;
    await sleep(200);
    const answer = c.text.slice(0, 12);
    assert.ok(
      c.closed,
      `after stop() resolved (${stoppedAt} ms) the client's connection is still open (answer ${show(answer)}, member upgraded ${m.upgraded()}, member connections open ${m.open()})`,
    );
    assert.equal(m.open(), 0, "a member connection outlives stop()");
  });

  it("upgrade requests answered with an error (refused 400, no member 503) are counted by status class like any other request", async () => {
    const app = await startProxy(baseConfig([{ url: "http://127.0.0.1:9", route: "lb1", status: "disabled" }]));
    const refused = new RawClient(app.port);
    await refused.send(WS_HEAD.replace("GET /ws ", "GET http://evil.example/ws "));
    const noMember = new RawClient(app.port);
    await noMember.send(WS_HEAD);
    const [r1] = await refused.responses(1, 4000);
    const [r2] = await noMember.responses(1, 4000);
    assert.deepEqual([r1.status, r2.status], [400, 503]);
    assert.deepEqual(
      { requests: app.metrics.requests, "4xx": app.metrics.byClass[4], "5xx": app.metrics.byClass[5] },
      { requests: 2, "4xx": 1, "5xx": 1 },
      "proxy_node_responses_total misses answers that proxy_node_requests_total counts",
    );
  });

  // ---- unusual member answers -------------------------------------------------------

  it("HEAD answered by a member that (wrongly) sends a body: no body reaches the client, the next request works, the member is not taken out of rotation for it", async () => {
    const member = await rawMember((sock) => {
      let got = "";
      sock.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        let i: number;
        while ((i = got.indexOf("\r\n\r\n")) >= 0) {
          const head = got.slice(0, i);
          got = got.slice(i + 4);
          if (head.startsWith("HEAD ")) sock.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world");
          else sock.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnext");
        }
      });
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    const [h] = await c.responses(1, 4000);
    await sleep(50);
    const bytesAfterHead = c.text.slice(h.head.length + 4);
    await c.send("GET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2, 4000);
    // Forwarding the head (200) or refusing the answer (502) are both defensible; the rest is not.
    assert.ok(h.status === 200 || h.status === 502, show(h.head));
    assert.deepEqual(
      { bytesAfterHead, next: `${rs[1].status} ${rs[1].body.trim()}`, memberState: app.balancer.members[0].state(Date.now()) },
      { bytesAfterHead: "", next: "200 next", memberState: "ok" },
      `HEAD answered ${h.status}`,
    );
    await assertSettled(app);
  });

  it("1xx interim answers (103 Early Hints, then 200): the client gets the final answer whole, and the connection stays usable", async () => {
    const member = await rawMember((sock) => {
      let got = "";
      sock.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        let i: number;
        while ((i = got.indexOf("\r\n\r\n")) >= 0) {
          const head = got.slice(0, i);
          got = got.slice(i + 4);
          const url = head.split(" ")[1];
          sock.write("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n");
          setTimeout(() => sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${url.length + 6}\r\n\r\nfinal ${url}`), 30);
        }
      });
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    await c.responses(1, 4000);
    await c.send("GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2, 4000);
    assert.deepEqual(
      rs.map((r) => [r.status, r.body]),
      [
        [200, "final /one"],
        [200, "final /two"],
      ],
    );
    for (const r of c.parsed().responses.filter((x) => x.status < 200)) assert.equal(r.status, 103, show(r.head));
    assert.equal(c.parsed().rest, "");
    await assertSettled(app);
  });

  // ---- requests waiting for a member connection ---------------------------------------

  /**
   * A member with one pooled connection (maxSockets 1) and clientRequestMs 400,
   * and a GET /slow (answered after 1.2 s) holding that connection: the next
   * request has to wait for it. The member answers `answer(url, body)`.
   */
  async function slowRequestHoldingTheOnlyConnection(answer: (url: string, body: string) => string) {
    const lb1 = await startMember("lb1", (req, res, body) => {
      setTimeout(
        () => {
          const text = answer(req.url ?? "", body);
          res.writeHead(200, { "Content-Length": String(text.length) });
          res.end(text);
        },
        req.url === "/slow" ? 1200 : 0,
      );
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1 }], { timeouts: { clientRequestMs: 400 } }));
    const thrown = collectUncaught();
    const a = new RawClient(app.port);
    await a.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => lb1.seen.length === 1, "the slow request at the member");
    return { lb1, app, a, thrown };
  }

  it("a complete POST waiting for a free member connection (maxSockets 1) longer than clientRequestMs gets the member's answer, not 408", async function () {
    this.timeout(10_000);
    const { app, a, thrown } = await slowRequestHoldingTheOnlyConnection((url, body) => (body ? `${url} ${body}` : url));
    const b = new RawClient(app.port);
    // The whole request at once: nothing is missing from the client.
    await b.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    const answer = async (c: RawClient): Promise<string> => {
      await until(() => c.finals().length > 0 || c.closed, "an answer", 4000).catch(() => undefined);
      const r = c.finals()[0];
      return r === undefined ? `no answer (${c.closed ? "closed" : "still waiting"})` : `${r.status} ${r.body}`;
    };
    const [ra, rb] = await Promise.all([answer(a), answer(b)]);
    assert.deepEqual(
      { slowGet: ra, queuedPost: rb, thrownByProxy: thrown.map((e) => e.message), inFlight: app.metrics.inFlight },
      { slowGet: "200 /slow", queuedPost: "200 /form hello", thrownByProxy: [], inFlight: 0 },
    );
  });

  it("a POST whose body never comes while it waits for a member connection: 408, and the proxy keeps serving when the connection frees", async function () {
    this.timeout(10_000);
    const { lb1, app, a, thrown } = await slowRequestHoldingTheOnlyConnection((url) => `done ${url}`);
    const b = new RawClient(app.port);
    await b.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part");
    const [rb] = await b.responses(1, 4000);
    assert.equal(rb.status, 408);
    // The slow answer now completes and frees the connection the POST was waiting for.
    await until(() => a.finals().length > 0 || a.closed, "the slow answer", 3000).catch(() => undefined);
    const ra = a.finals()[0];
    const after = await within(
      request(app.port, { path: "/after" }).then((r) => `${r.status} ${r.body}`),
      3000,
      "no answer within 3 s",
    );
    await sleep(100);
    assert.deepEqual(
      {
        slowGet: ra === undefined ? "no answer" : `${ra.status} ${ra.body}`,
        nextRequest: after,
        thrownByProxy: thrown.map((e) => e.message),
        memberSaw: lb1.seen.map((x) => x.url),
        counters: countersText(app),
      },
      {
        slowGet: "200 done /slow",
        nextRequest: "200 done /after",
        thrownByProxy: [],
        memberSaw: ["/slow", "/after"],
        counters: "requests=3 inFlight=0 byClass=[0,2,0,1,0] busy=[0]",
      },
    );
  });
});
