// The client's side of a connection, seen on the wire: pipelining, 100-continue,
// keep-alive and close, timeouts, half-close, and how responses are framed.
import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, closeAll, sleep, until } from "../helpers";
import { RawClient, type RawMember, rawMember, closeRawMembers, destroyRawClients, header, show } from "../raw-http";

/** A member on a raw socket that answers every request with `answer` and then closes the connection. */
function closingMember(answer: string): Promise<RawMember> {
  return rawMember((c) => {
    let got = "";
    c.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (got.includes("\r\n\r\n")) c.end(answer);
    });
  });
}

/** A member that answers with the request's URL, length-delimited. */
function startEchoUrlMember() {
  return startMember("lb1", (req, res) => {
    const body = req.url ?? "";
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": String(body.length) });
    res.end(body);
  });
}

describe("http: the client connection", () => {
  afterEach(async () => {
    destroyRawClients();
    await closeAll();
    await closeRawMembers();
  });

  it("two pipelined GETs in one write get two complete answers, in order", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2);
    assert.deepEqual(
      rs.map((r) => [r.status, r.body]),
      [
        [200, "/a"],
        [200, "/b"],
      ],
    );
    assert.deepEqual(
      lb1.seen.map((r) => r.url),
      ["/a", "/b"],
    );
    assert.equal(c.parsed().rest, "", "nothing after the two answers");
  });

  it('Expect: 100-continue gets "100 Continue", then the body reaches the member (without the Expect header)', async () => {
    const lb1 = await startMember("lb1", (_req, res, body) => {
      res.writeHead(200, { "Content-Length": String(body.length + 4) });
      res.end(`got ${body}`);
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    await until(() => c.text.includes("\r\n\r\n") || c.closed, "an interim answer", 3000).catch(() => undefined);
    assert.match(c.text, /^HTTP\/1\.1 100 Continue\r\n(?:[^\r\n]+\r\n)*\r\n$/, `expected only "100 Continue" before the body, got ${show(c.text)}`);
    await c.send("hello");
    const [r] = await c.responses(1);
    assert.equal(r.status, 200);
    assert.equal(r.body, "got hello");
    assert.equal(lb1.seen.length, 1);
    assert.equal(lb1.seen[0].body, "hello");
    assert.equal(lb1.seen[0].headers.expect, undefined);
  });

  it("an unknown expectation (Expect: something-else) gets 417 and reaches no member", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: something-else\r\n\r\nhello");
    const [r] = await c.responses(1);
    assert.equal(r.status, 417);
    await sleep(50);
    assert.equal(lb1.seen.length, 0);
  });

  it("HTTP/1.0 without Connection: keep-alive gets its answer, then the proxy closes the connection", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /old HTTP/1.0\r\nHost: x\r\n\r\n");
    assert.ok(await c.waitClosed(), `the proxy keeps an HTTP/1.0 connection open: ${show(c.text)}`);
    const [r] = await c.responses(1);
    assert.equal(r.status, 200);
    assert.equal(r.body, "/old");
  });

  it("HTTP/1.0 with Connection: keep-alive keeps the connection open for a second request", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /one HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    const [r1] = await c.responses(1);
    assert.equal(r1.body, "/one");
    assert.match(String(header(r1, "connection")), /keep-alive/i, `an HTTP/1.0 client closes unless told keep-alive: ${show(r1.head)}`);
    await sleep(50);
    assert.equal(c.closed, false, "the proxy closed the connection");
    await c.send("GET /two HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    const rs = await c.responses(2);
    assert.deepEqual(
      rs.map((r) => [r.status, r.body]),
      [
        [200, "/one"],
        [200, "/two"],
      ],
    );
    assert.deepEqual(
      lb1.seen.map((r) => r.url),
      ["/one", "/two"],
    );
  });

  it("an HTTP/1.1 client sending Connection: close is answered with Connection: close, then the proxy closes the connection", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const [r] = await c.responses(1);
    assert.equal(r.body, "/bye");
    assert.match(String(header(r, "connection")), /^close$/i);
    assert.ok(await c.waitClosed(), "the proxy keeps the connection open");
  });

  it("a keep-alive connection idle longer than keepAliveMs is closed by the proxy", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { keepAliveMs: 300 } }));
    const c = new RawClient(app.port);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    const [r] = await c.responses(1);
    assert.equal(r.body, "/a");
    assert.notEqual(String(header(r, "connection")).toLowerCase(), "close", "the answer already announced a close");
    assert.ok(await c.waitClosed(3000), "an idle keep-alive connection is never closed");
    assert.equal(c.parsed().rest, "", "nothing is sent after the answer");
  });

  it("a keep-alive connection idle for less than keepAliveMs is still usable", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { keepAliveMs: 300 } }));
    const c = new RawClient(app.port);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    await c.responses(1);
    await sleep(50);
    await c.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2);
    assert.deepEqual(
      rs.map((r) => [r.status, r.body]),
      [
        [200, "/a"],
        [200, "/b"],
      ],
    );
  });

  it("a client that sends less body than its Content-Length gets 408 after clientRequestMs, and the connection is closed", async function () {
    this.timeout(10_000);
    const lb1 = await startMember("lb1");
    // clientHeadersMs also short: node's server only checks request deadlines every clientHeadersMs / 4.
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { clientRequestMs: 500, clientHeadersMs: 400 } }));
    const c = new RawClient(app.port);
    await c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${"a".repeat(10)}`);
    assert.ok(await c.waitClosed(8000), `the proxy waits forever for the rest of the body: ${show(c.text)}`);
    assert.match(c.text, /^HTTP\/1\.1 408 /, `expected 408, got ${show(c.text)}`);
    assert.equal(lb1.seen.length, 0, "a member got a complete request");
  });

  it("a client that half-closes after a complete GET still gets the whole answer", async () => {
    const lb1 = await startMember("lb1", (req, res) => {
      // Answer late, so the client's FIN arrives before the answer does.
      setTimeout(() => {
        const body = `late answer for ${req.url}`;
        res.writeHead(200, { "Content-Length": String(body.length) });
        res.end(body);
      }, 100);
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /half HTTP/1.1\r\nHost: x\r\n\r\n");
    c.socket.end();
    const [r] = await c.responses(1);
    assert.equal(r.status, 200);
    assert.equal(r.body, "late answer for /half");
  });

  it("garbage after a valid request gets the valid answer first, then 400, then a close", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\nXYZ\r\n\r\n");
    assert.ok(await c.waitClosed(), `the proxy keeps the connection open: ${show(c.text)}`);
    const { responses, rest } = c.parsed();
    assert.deepEqual(
      responses.map((r) => [r.status, r.status === 200 ? r.body : ""]),
      [
        [200, "/ok"],
        [400, ""],
      ],
      show(c.text),
    );
    assert.equal(rest, "");
    assert.deepEqual(
      lb1.seen.map((r) => r.url),
      ["/ok"],
    );
  });

  it("a request head arriving one byte per write is still proxied", async () => {
    const lb1 = await startEchoUrlMember();
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    const req = "GET /byte-by-byte?x=1 HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n";
    for (const ch of req) {
      await c.send(ch);
      await sleep(1);
    }
    const [r] = await c.responses(1);
    assert.equal(r.status, 200);
    assert.equal(r.body, "/byte-by-byte?x=1");
    assert.equal(lb1.seen[0].headers["x-slow"], "yes");
  });

  it("a member answer delimited by its close reaches an HTTP/1.1 client framed, and the connection stays usable", async () => {
    const m = await closingMember("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body");
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
    const [r1] = await c.responses(1);
    assert.ok(
      header(r1, "content-length") !== undefined || /chunked/i.test(String(header(r1, "transfer-encoding"))),
      `no length or chunking in ${show(r1.head)}`,
    );
    assert.equal(r1.body, "close-delimited body");
    assert.equal(c.closed, false);
    await c.send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2);
    assert.deepEqual(
      rs.map((r) => [r.status, r.body]),
      [
        [200, "close-delimited body"],
        [200, "close-delimited body"],
      ],
    );
  });

  it("a member answer delimited by its close reaches an HTTP/1.0 client whole, then the connection closes", async () => {
    const m = await closingMember("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body");
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    assert.ok(await c.waitClosed(), `the proxy keeps the connection open: ${show(c.text)}`);
    const [r] = await c.responses(1);
    assert.equal(r.status, 200);
    assert.equal(r.body, "close-delimited body");
    assert.equal(c.parsed().rest, "");
  });

  it("HEAD: the answer carries the member's Content-Length but no body, and the next request on the socket works", async () => {
    const lb1 = await startMember("lb1", (req, res) => {
      if (req.method === "HEAD") {
        res.writeHead(200, { "Content-Length": "1234" });
        return void res.end();
      }
      res.writeHead(200, { "Content-Length": "4" });
      res.end("next");
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    const [h] = await c.responses(1);
    assert.equal(h.status, 200);
    assert.equal(header(h, "content-length"), "1234");
    await sleep(50);
    assert.equal(c.text, `${h.head}\r\n\r\n`, "bytes after the HEAD answer");
    await c.send("GET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2);
    assert.deepEqual([rs[1].status, rs[1].body], [200, "next"]);
    assert.equal(c.parsed().rest, "");
  });

  it("a 204 from the member reaches the client without a body, and the connection stays usable", async () => {
    const lb1 = await startMember("lb1", (req, res) => {
      if (req.url === "/empty") {
        res.writeHead(204);
        return void res.end();
      }
      res.writeHead(200, { "Content-Length": "4" });
      res.end("next");
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
    const [r] = await c.responses(1);
    assert.equal(r.status, 204);
    assert.equal(header(r, "transfer-encoding"), undefined);
    await sleep(50);
    assert.equal(c.text, `${r.head}\r\n\r\n`, "bytes after the 204 answer");
    await c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    const rs = await c.responses(2);
    assert.deepEqual([rs[1].status, rs[1].body], [200, "next"]);
    assert.equal(c.parsed().rest, "");
  });
});
