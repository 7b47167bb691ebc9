import { strict as assert } from "node:assert";
import * as http from "node:http";
import * as net from "node:net";
import { startMember, startProxy, baseConfig, closeAll } from "../helpers";

/** Minimal upgrade client: sends the handshake, then returns the socket and the head it read. */
function upgrade(port: number, headers: Record<string, string>): Promise<{ status: number; socket: net.Socket; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/ws",
      agent: false,
      headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13", ...headers },
    });
    req.on("upgrade", (res, socket) => resolve({ status: res.statusCode ?? 0, socket, res }));
    req.on("response", (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, socket: res.socket as net.Socket, res });
    });
    req.on("error", reject);
    req.end();
  });
}

/** A member that accepts the upgrade and echoes every byte back, prefixed with its route. */
async function echoMember(route: string) {
  const m = await startMember(route);
  m.server.on("upgrade", (req, socket: net.Socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Route: ${route}\r\n\r\n`);
    socket.on("data", (d) => socket.write(`${route}:${d.toString()}`));
    socket.on("error", () => undefined);
  });
  return m;
}

describe("websocket: upgrade pass-through", () => {
  afterEach(closeAll);

  it("a WebSocket handshake is passed to the sticky member and bytes flow both ways", async () => {
    const lb1 = await echoMember("lb1");
    const lb2 = await echoMember("lb2");
    const app = await startProxy(
      baseConfig([
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2" },
      ]),
    );
    const { status, socket, res } = await upgrade(app.port, { Cookie: "BALANCEID=balancer.lb2" });
    assert.equal(status, 101);
    assert.equal(res.headers["x-route"], "lb2");
    const got = await new Promise<string>((resolve) => {
      socket.once("data", (d) => resolve(d.toString()));
      socket.write("hello");
    });
    assert.equal(got, "lb2:hello");
    socket.destroy();
  });

  it("the member sees the Upgrade and Sec-WebSocket headers", async () => {
    const lb1 = await echoMember("lb1");
    let seen: http.IncomingHttpHeaders = {};
    lb1.server.prependListener("upgrade", (req) => (seen = req.headers));
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const { socket } = await upgrade(app.port, {});
    assert.equal(seen.upgrade, "websocket");
    assert.equal(seen["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
    assert.match(String(seen.connection), /upgrade/i);
    assert.equal(seen["x-forwarded-for"], "127.0.0.1");
    socket.destroy();
  });

  it("a member that declines the upgrade: the client gets its answer", async () => {
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(426, { "Content-Type": "text/plain" });
      res.end("no websockets here");
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const { status, socket } = await upgrade(app.port, {});
    assert.equal(status, 426);
    socket.destroy();
  });

  it("closing the client closes the member side", async () => {
    const lb1 = await echoMember("lb1");
    let memberSocketClosed = false;
    lb1.server.on("upgrade", (_req, s: net.Socket) => s.on("end", () => (memberSocketClosed = true)));
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const { socket } = await upgrade(app.port, {});
    socket.destroy();
    const start = Date.now();
    while (!memberSocketClosed && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(memberSocketClosed);
    while (app.balancer.members[0].busy !== 0 && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(app.balancer.members[0].busy, 0);
  });
});
