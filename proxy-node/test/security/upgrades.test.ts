// Issue 14, items 4 and 5: an upgrade is a member connection like any other
// (it counts against maxSockets), and an upgrade request cannot carry a body
// whose length we would forward without its bytes.
import { strict as assert } from "node:assert";
import type * as net from "node:net";
import { startMember, startProxy, baseConfig, closeAll, rawExchange, sleep, until } from "../helpers";
import { RawClient, destroyRawClients } from "../raw-http";

const HANDSHAKE =
  "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/** Status of the first answer on the connection (101 counts: finals() would skip it). */
async function firstStatus(c: RawClient): Promise<number> {
  await until(() => c.text.includes("\r\n\r\n") || c.closed, "an answer head", 3000);
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(c.text);
  assert.ok(m, `no answer: ${JSON.stringify(c.text)}`);
  return Number(m[1]);
}

async function upgradeMember() {
  const m = await startMember("lb1");
  let connections = 0;
  m.server.on("connection", () => connections++);
  m.server.on("upgrade", (_req, socket: net.Socket) => {
    socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    socket.on("error", () => undefined);
  });
  return { m, connections: () => connections };
}

describe("security: upgrades and member connection limits", () => {
  afterEach(async () => {
    destroyRawClients();
    await closeAll();
  });

  it("20 upgrade requests with maxSockets 1 open one member connection; the rest get 503", async () => {
    const { m, connections } = await upgradeMember();
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1", maxSockets: 1 }]));
    const clients = Array.from({ length: 20 }, () => new RawClient(app.port));
    await Promise.all(clients.map((c) => c.send(`${HANDSHAKE}\r\n`)));
    const heads = await Promise.all(clients.map(firstStatus));
    assert.equal(heads.filter((s) => s === 101).length, 1, `statuses: ${heads.join(",")}`);
    assert.equal(heads.filter((s) => s === 503).length, 19);
    assert.equal(connections(), 1);
  });

  it("a closed upgrade gives its member connection back", async () => {
    const { m } = await upgradeMember();
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1", maxSockets: 1 }]));
    const first = new RawClient(app.port);
    await first.send(`${HANDSHAKE}\r\n`);
    assert.equal(await firstStatus(first), 101);
    first.destroy();
    await sleep(200);
    const second = new RawClient(app.port);
    await second.send(`${HANDSHAKE}\r\n`);
    assert.equal(await firstStatus(second), 101);
  });

  it("an idle pooled connection makes room for an upgrade", async () => {
    const { m } = await upgradeMember();
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1", maxSockets: 1 }]));
    const plain = new RawClient(app.port);
    await plain.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await plain.responses(1))[0].status, 200);
    const up = new RawClient(app.port);
    await up.send(`${HANDSHAKE}\r\n`);
    assert.equal(await firstStatus(up), 101);
  });

  it("an upgrade request with a Content-Length body is refused at once, not forwarded without its bytes", async () => {
    const { m } = await upgradeMember();
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const started = Date.now();
    const out = await rawExchange(app.port, `${HANDSHAKE}Content-Length: 5\r\n\r\nhello`, 5000);
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.ok(Date.now() - started < 4000, "answered before the exchange deadline, not after a member wait");
    assert.equal(m.seen.length, 0);
  });
});
