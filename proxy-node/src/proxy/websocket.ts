// WebSocket (and any HTTP/1.1 Upgrade) pass-through: the handshake goes to the
// member chosen like any request (sticky included), then bytes flow both ways
// untouched. Upgrade sockets never go back to a keep-alive pool.
import * as http from "node:http";
import type { Duplex } from "node:stream";
import type { ProxyContext } from "./handler";
import { refuseStatus } from "./incoming";
import { outgoingHeaders } from "./outgoing";
import { connectionTokens, isHopByHop } from "./hop";
import { Framing, RequestHead } from "./request-parser";
import { ipAllowed } from "../cidr";

export function handleUpgrade(ctx: ProxyContext, req: RequestHead, clientIp: string, socket: Duplex, head: Buffer): void {
  ctx.metrics.requests++;
  socket.on("error", () => socket.destroy());
  // A body on an upgrade request has no place on the wire once the protocol
  // switches: forwarding its length without its bytes leaves the member waiting.
  const refuse = req.framing !== Framing.None ? 400 : refuseStatus(req);
  if (refuse !== 0) {
    ctx.metrics.refused++;
    ctx.metrics.countStatus(refuse);
    rawReply(socket, refuse, "Refused");
    return;
  }
  const r = ctx.redirect;
  if (r !== null && !ipAllowed(clientIp, r.exempt)) {
    ctx.metrics.countStatus(301);
    rawReply(socket, 301, "Moved Permanently", ["Location", r.origin + req.url]);
    return;
  }
  const choice = ctx.balancer.choose(req.url, req.cookie, null, Date.now());
  const m = choice.member;
  if (m === null) {
    ctx.metrics.noMember++;
    ctx.metrics.countStatus(503);
    rawReply(socket, 503, "No member available");
    return;
  }
  // An upgraded connection is a member connection like any other: it counts against maxSockets.
  if (!m.pool.reserve()) {
    ctx.metrics.queueRefused.full++;
    ctx.metrics.countStatus(503);
    rawReply(socket, 503, "Member busy");
    return;
  }
  const headers = outgoingHeaders(req, clientIp, m.authority, ctx.outgoing);
  headers.push("Connection", "Upgrade", "Upgrade", req.upgrade ?? "websocket");
  m.busy++;
  m.requests++;
  let released = false;
  const release = (): void => {
    if (!released) {
      released = true;
      m.busy--;
      m.pool.unreserve();
    }
  };
  const up = http.request({ host: m.host, port: m.port, method: req.method, path: req.url, headers, agent: false, setHost: false });
  up.setTimeout(ctx.timeouts.connectMs + ctx.timeouts.headersMs, () => up.destroy(new Error("upstream timeout")));
  up.on("error", () => {
    m.errors++;
    release();
    ctx.metrics.countStatus(502);
    rawReply(socket, 502, "Bad Gateway");
  });
  up.on("response", (res) => {
    // The member declined the upgrade: relay its answer and close.
    ctx.metrics.countStatus(res.statusCode ?? 502);
    const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
    const tokens = connectionTokens(res.rawHeaders);
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      if (!isHopByHop(res.rawHeaders[i], tokens)) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
    }
    lines.push("Connection: close", "", "");
    if (socket.writable) socket.write(lines.join("\r\n"));
    res.pipe(socket);
    res.on("end", release);
    res.on("close", release);
  });
  up.on("upgrade", (res, upSocket, upHead) => {
    ctx.metrics.websockets++;
    ctx.metrics.countStatus(res.statusCode ?? 101);
    up.setTimeout(0);
    const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
    for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
    if (ctx.via !== null) lines.push(`Via: ${ctx.via}`);
    lines.push("", "");
    if (!socket.writable) {
      upSocket.destroy();
      release();
      return;
    }
    socket.write(lines.join("\r\n"));
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.setTimeout(ctx.timeouts.idleMs, () => upSocket.destroy());
    const close = (): void => {
      release();
      upSocket.destroy();
      socket.destroy();
    };
    upSocket.on("error", close);
    upSocket.on("close", close);
    socket.on("close", close);
    // Our server sockets allow half-open connections; a WebSocket has no use
    // for them, so an end from the client finishes our side too.
    socket.on("end", () => socket.end());
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  up.end();
}

export function rawReply(socket: Duplex, status: number, text: string, extra: readonly string[] = []): void {
  if (socket.writable) {
    const body = `${status} ${text}\n`;
    let fields = "";
    for (let i = 0; i < extra.length; i += 2) fields += `${extra[i]}: ${extra[i + 1]}\r\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\n${fields}Content-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  } else socket.destroy();
}
