import { strict as assert } from "node:assert";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { startMember, startProxy, baseConfig, rawExchange, closeAll, sleep } from "../helpers";

/** A server standing for "some other host": it must never see a connection. */
async function victim(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const s = net.createServer((c) => {
    n++;
    c.destroy();
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { port: (s.address() as AddressInfo).port, connections: () => n, close: () => new Promise((r) => s.close(() => r())) };
}

describe("security: never an open forward proxy", () => {
  afterEach(closeAll);

  it("absolute-URI request is refused and nothing reaches the named host", async () => {
    const v = await victim();
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const out = await rawExchange(app.port, `GET http://127.0.0.1:${v.port}/secret HTTP/1.1\r\nHost: 127.0.0.1:${v.port}\r\nConnection: close\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 400 /);
    await sleep(50);
    assert.equal(v.connections(), 0);
    assert.equal(lb1.seen.length, 0);
    await v.close();
  });

  it("CONNECT is refused with 405 and no tunnel is opened", async () => {
    const v = await victim();
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const out = await rawExchange(app.port, `CONNECT 127.0.0.1:${v.port} HTTP/1.1\r\nHost: 127.0.0.1:${v.port}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 405 /);
    await sleep(50);
    assert.equal(v.connections(), 0);
    assert.equal(lb1.seen.length, 0);
    await v.close();
  });

  it("bytes a client sends after a refused CONNECT (meant for the tunnel) are not served as requests", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const out = await rawExchange(app.port, "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\nGET /through-the-tunnel HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(out, /^HTTP\/1\.1 405 /);
    assert.match(out, /\r\nConnection: close\r\n/);
    assert.equal((out.match(/HTTP\/1\.1 /g) ?? []).length, 1, out);
    assert.equal(lb1.seen.length, 0);
  });

  it("a WebSocket upgrade with an absolute-URI target is refused too", async () => {
    const v = await victim();
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const out = await rawExchange(app.port, `GET http://127.0.0.1:${v.port}/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal(v.connections(), 0);
    await v.close();
  });
});
