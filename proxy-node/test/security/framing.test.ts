import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, rawExchange, request, closeAll } from "../helpers";

async function setup(extra: Record<string, unknown> = {}) {
  const lb1 = await startMember("lb1");
  const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], extra));
  return { lb1, app };
}

describe("security: request framing and limits", () => {
  afterEach(closeAll);

  it("conflicting Content-Length and Transfer-Encoding is rejected (no smuggled request reaches a member)", async () => {
    const { lb1, app } = await setup();
    const out = await rawExchange(
      app.port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("two different Content-Length headers are rejected", async () => {
    const { lb1, app } = await setup();
    const out = await rawExchange(app.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("an obfuscated Transfer-Encoding is rejected", async () => {
    const { lb1, app } = await setup();
    const out = await rawExchange(app.port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc");
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("HTTP/1.1 without Host is rejected", async () => {
    const { lb1, app } = await setup();
    const out = await rawExchange(app.port, "GET / HTTP/1.1\r\n\r\n");
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("headers over maxHeaderSize get 431", async () => {
    const { lb1, app } = await setup({ limits: { maxHeaderSize: 4096 } });
    const out = await rawExchange(app.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(8000)}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 431 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("more headers than maxHeadersCount get 431 (not silently cut)", async () => {
    const { lb1, app } = await setup({ limits: { maxHeadersCount: 20 } });
    let h = "";
    for (let i = 0; i < 30; i++) h += `X-H${i}: ${i}\r\n`;
    const out = await rawExchange(app.port, `GET / HTTP/1.1\r\nHost: x\r\n${h}Connection: close\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 431 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("a slow client that never finishes its headers is timed out with 408", async function () {
    this.timeout(10_000);
    const { lb1, app } = await setup({ timeouts: { clientHeadersMs: 400 } });
    const out = await rawExchange(app.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", 8000);
    assert.match(out, /^HTTP\/1\.1 408 /);
    assert.equal(lb1.seen.length, 0);
  });

  it("malformed cookies are ignored and never crash the proxy", async () => {
    const { app } = await setup();
    for (const c of [
      "BALANCEID",
      "BALANCEID=",
      ";;;=;",
      "BALANCEID=balancer.",
      "BALANCEID=.",
      'BALANCEID="balancer.lb1',
      "\u00ff\u00feBALANCEID=\u00ff",
      "BALANCEID=balancer.lb1.lb1.lb1".repeat(100),
    ]) {
      const r = await request(app.port, { path: "/", headers: { Cookie: c } });
      assert.equal(r.status, 200, c);
    }
    assert.equal((await request(app.port, { path: "/" })).body, "lb1");
  });
});
