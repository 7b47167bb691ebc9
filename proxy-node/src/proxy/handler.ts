// One client request, proxied to a member with retries on another member
// when that is safe. The client side is a ClientConn (client.ts), the member
// side a pooled Conn (upstream.ts); the Exchange is the one object that ties
// them together for one request, so a request allocates no closures of ours.
import type { Balancer } from "../balancer";
import type { Member } from "../members";
import type { Metrics } from "../metrics";
import type { Logger } from "../log";
import { refuseStatus } from "./incoming";
import { outgoingHead, OutgoingOptions } from "./outgoing";
import { responseHeaders, ReverseRewriter } from "./response";
import type { Conn, UpstreamError, UpstreamUser } from "./upstream";
import type { ResponseHead } from "./response-parser";
import type { ClientConn, ClientUser, ServerHandlers } from "./client";
import { Framing, RequestError, RequestHead, STATUS_TEXT } from "./request-parser";
import { handleUpgrade } from "./websocket";
import { ipAllowed, Cidr } from "../cidr";

export interface Timeouts {
  /** Also applied to each member's pool by the app. */
  connectMs: number;
  headersMs: number;
  idleMs: number;
}

export interface ProxyContext {
  balancer: Balancer;
  metrics: Metrics;
  logger: Logger;
  logRequests: boolean;
  /** Path prefixes whose rest the request log withholds (config log.withholdPaths). */
  withholdPaths: readonly string[];
  outgoing: OutgoingOptions;
  rewriter: ReverseRewriter;
  via: string | null;
  /** Sticky cookie proxy-node sets itself, or null. */
  setCookie: { name: string; valuePrefix: string; attributes: string } | null;
  timeouts: Timeouts;
  /** Plain listener with HTTPS on: requests get a 301 to this origin, unless they come from `exempt`. */
  redirect: { origin: string; exempt: readonly Cidr[] } | null;
  /** Strict-Transport-Security value on every answer of the HTTPS listener, or null. */
  hsts: string | null;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

class Exchange implements UpstreamUser, ClientUser {
  tried: Member[] | null = null;
  member: Member | null = null;
  lastMember: Member | null = null;
  conn: Conn | null = null;
  sticky = false;
  attempts = 0;
  /** Response headers went to the client: no retry is possible any more. */
  responded = false;
  bodyStarted = false;
  bodyPaused = false;
  requestSent = false;
  upstreamPaused = false;
  keepAlive = false;
  status = 0;
  done = false;
  readonly start = Date.now();
  /** Idempotent and without a body: may go to another member after it was sent (UpstreamUser). */
  readonly resendable: boolean;

  constructor(
    readonly ctx: ProxyContext,
    readonly client: ClientConn,
    readonly req: RequestHead,
  ) {
    this.resendable = IDEMPOTENT.has(req.method) && req.framing === Framing.None;
  }

  // UpstreamUser: the pool calls these.

  attached(conn: Conn): void {
    this.conn = conn;
  }

  ready(conn: Conn): void {
    this.conn = conn;
    if (this.done) {
      // Finished (client gone, body refused) while the connection was coming.
      this.releaseConn(false);
      return;
    }
    conn.setTimeout(this.ctx.timeouts.headersMs);
    const { req } = this;
    conn.write(outgoingHead(req, this.client.remoteAddress, (this.member as Member).authority, this.ctx.outgoing));
    if (req.framing === Framing.None) {
      this.requestSent = true;
      return;
    }
    // The body is read only once the member is connected, so a refused
    // connection leaves it unread and the request can go to another member.
    this.bodyStarted = true;
    this.client.readBody();
  }

  head(h: ResponseHead): void {
    if (this.done) {
      // The client left while the member was answering.
      this.releaseConn(false);
      return;
    }
    const { ctx } = this;
    const m = this.member as Member;
    const sc = ctx.setCookie;
    let cookieLine: string | null = null;
    if (sc !== null && !(this.sticky && cookieNamesMember(this, m))) cookieLine = ctx.outgoing.proto === "https" ? m.secureCookieLine : m.cookieLine;
    const headers = responseHeaders(h.raw, { rewriter: ctx.rewriter, via: ctx.via, cookieName: sc ? sc.name : "", setCookieLine: cookieLine, hsts: ctx.hsts });
    this.status = h.status;
    this.keepAlive = h.keepAlive;
    this.responded = true;
    (this.conn as Conn).setTimeout(ctx.timeouts.idleMs);
    this.client.sendHead(h.status, h.reason, headers, h.body, h.contentLength);
  }

  body(chunk: Buffer): void {
    if (this.done || !this.responded) return;
    if (!this.client.sendBody(chunk) && !this.upstreamPaused && this.conn !== null) {
      this.upstreamPaused = true;
      this.conn.socket.pause();
    }
  }

  flush(): void {
    if (!this.done) this.client.flush();
  }

  complete(conn: Conn): void {
    this.conn = conn;
    if (!this.responded || this.done) return;
    // Member side first: a pipelined next request may want this connection.
    this.releaseConn(this.keepAlive && this.requestSent);
    this.releaseMember();
    this.finish(this.status);
    this.client.endResponse();
  }

  failed(err: UpstreamError): void {
    this.conn = null;
    if (this.done) return;
    const m = this.member;
    const { ctx } = this;
    if (err.code === "QUEUE_FULL" || err.code === "QUEUE_TIMEOUT") {
      // The member is busy, not broken: no error mark, and no retry that would
      // move a sticky client's session to another member.
      this.releaseMember();
      finishWithError(this, 503, "Member busy");
      return;
    }
    ctx.metrics.upstreamErrors++;
    const timeout = err.code === "TIMEOUT" || err.code === "CONNECT_TIMEOUT";
    if (timeout) ctx.metrics.upstreamTimeouts++;
    if (m !== null) {
      m.errors++;
      // A pooled connection the member closed while we sent is not the member's
      // fault; anything else marks it in error until `retry` passes (passive check).
      // A malformed answer is the answer's fault, not the member's health (like Apache).
      // UNREACHABLE is a finding about requests already sent, not a failed try: the
      // next connect to the member, with its own deadline, decides on the mark.
      if (err.code !== "BAD_RESPONSE" && err.code !== "UNREACHABLE" && (err.connectFailed || !err.reused || timeout)) m.markError(Date.now());
    }
    this.releaseMember();
    if (this.responded) {
      // Part of the response is already with the client: all we can do is cut it.
      this.finish(this.status);
      this.client.abort();
      return;
    }
    const retryable =
      err.beforeResponse &&
      !this.bodyStarted &&
      err.code !== "TIMEOUT" &&
      (IDEMPOTENT.has(this.req.method) || err.connectFailed || (err.reused && err.code === "ECONNRESET") || this.req.framing !== Framing.None);
    if (retryable && m !== null && this.attempts <= ctx.balancer.maxRetries && !this.client.closed) {
      ctx.metrics.retries++;
      (this.tried ??= []).push(m);
      attempt(this);
      return;
    }
    if (err.code === "TIMEOUT") finishWithError(this, 504, "Gateway Timeout");
    else finishWithError(this, 502, "Bad Gateway");
  }

  /** The member socket drained after a body write returned false. */
  drained(): void {
    if (this.bodyPaused) {
      this.bodyPaused = false;
      this.client.resumeBody();
    }
  }

  // ClientUser: the client connection calls these.

  bodyData(chunk: Buffer): void {
    const conn = this.conn;
    if (conn === null || this.done) return;
    let ok: boolean;
    if (this.req.framing === Framing.Chunked) {
      conn.write(`${chunk.length.toString(16)}\r\n`);
      conn.write(chunk);
      ok = conn.write("\r\n");
    } else ok = conn.write(chunk);
    if (!ok && !this.bodyPaused) {
      this.bodyPaused = true;
      this.client.pauseBody();
    }
  }

  bodyEnd(): void {
    if (this.req.framing === Framing.Chunked && this.conn !== null) this.conn.write("0\r\n\r\n");
    this.requestSent = true;
  }

  bodyError(err: RequestError): void {
    if (this.done) return;
    this.ctx.metrics.refused++;
    this.dropUpstream();
    if (this.responded) {
      this.finish(this.status);
      this.client.abort();
      return;
    }
    finishWithError(this, err.status, STATUS_TEXT[err.status] ?? "Bad Request");
  }

  clientDrained(): void {
    if (this.upstreamPaused) {
      this.upstreamPaused = false;
      this.conn?.socket.resume();
    }
  }

  clientGone(): void {
    if (this.done) return;
    this.dropUpstream();
    // 499 as nginx logs it: the client closed before the response was complete.
    this.finish(499);
  }

  /** Gives up the member side: closes its connection, or leaves the pool's queue. */
  dropUpstream(): void {
    if (this.conn !== null) this.releaseConn(false);
    else if (this.member !== null) this.member.pool.cancel(this);
    this.releaseMember();
  }

  /** Accounting, once per request. */
  finish(status: number): void {
    if (this.done) return;
    this.done = true;
    const { ctx } = this;
    ctx.metrics.inFlight--;
    ctx.metrics.countStatus(status);
    if (ctx.logRequests) logLine(ctx, this.client, this.req, status, this.start, this.lastMember, this.sticky, this.attempts);
  }

  releaseConn(keepAlive: boolean): void {
    const c = this.conn;
    this.conn = null;
    if (c !== null) c.release(keepAlive);
  }

  /** Frees the member's busy slot once per attempt. */
  releaseMember(): void {
    const m = this.member;
    if (m === null) return;
    m.busy--;
    this.member = null;
    this.lastMember = m;
  }
}

/** The client listener's callbacks: proxy each request, pass upgrades on, count refusals. */
export function createHandlers(getCtx: () => ProxyContext): ServerHandlers {
  return {
    request(client: ClientConn, req: RequestHead): void {
      const ctx = getCtx();
      ctx.metrics.requests++;
      const refuse = refuseStatus(req);
      if (refuse !== 0) {
        ctx.metrics.refused++;
        ctx.metrics.countStatus(refuse);
        if (ctx.logRequests) logLine(ctx, client, req, refuse, Date.now(), null, false, 0);
        // What follows a CONNECT is tunnel data, never requests of ours to serve.
        if (req.method === "CONNECT") client.closeAfterResponse();
        client.sendSimple(refuse, refuse === 405 ? "Method Not Allowed" : "Refused");
        return;
      }
      const r = ctx.redirect;
      if (r !== null && !ipAllowed(client.remoteAddress, r.exempt)) {
        ctx.metrics.countStatus(301);
        if (ctx.logRequests) logLine(ctx, client, req, 301, Date.now(), null, false, 0);
        // The target is origin-form (refuseStatus): the client's path and query, on our HTTPS origin only.
        client.sendSimple(301, "Moved Permanently", ["Location", r.origin + req.url]);
        return;
      }
      const ex = new Exchange(ctx, client, req);
      client.user = ex;
      ctx.metrics.inFlight++;
      attempt(ex);
    },
    upgrade(client, req, socket, rest): void {
      handleUpgrade(getCtx(), req, client.remoteAddress, socket, rest);
    },
    refused(status: number): void {
      const ctx = getCtx();
      ctx.metrics.requests++;
      ctx.metrics.refused++;
      ctx.metrics.countStatus(status);
    },
  };
}

function attempt(ex: Exchange): void {
  const { ctx, req } = ex;
  const choice = ctx.balancer.choose(req.url, req.cookie, ex.tried, Date.now());
  const m = choice.member;
  if (m === null) {
    ctx.metrics.noMember++;
    // nofailover (choice.sticky) answers 503 like Apache, also after a failed try.
    if (ex.attempts === 0 || choice.sticky) finishWithError(ex, 503, "No member available");
    else finishWithError(ex, 502, "Bad Gateway");
    return;
  }
  ex.attempts++;
  ex.member = m;
  ex.sticky = choice.sticky;
  m.busy++;
  m.requests++;
  m.pool.acquire(ex, req.method === "HEAD");
}

// The request's cookie already names this member: the client has the cookie.
function cookieNamesMember(ex: Exchange, m: Member): boolean {
  const sc = ex.ctx.setCookie;
  if (sc === null) return false;
  const header = ex.req.cookie;
  return header !== undefined && header.includes(`${sc.name}=${sc.valuePrefix}${m.route}`);
}

function finishWithError(ex: Exchange, status: number, text: string): void {
  ex.status = status;
  ex.releaseConn(false);
  const { client } = ex;
  ex.finish(status);
  if (client.headSent || client.closed) {
    client.abort();
    return;
  }
  client.sendSimple(status, text, status === 503 ? ["Retry-After", "1"] : []);
}

/** A URL for the log: whatever follows a withheld prefix (a secret in the path) is left out. */
export function withheld(url: string, prefixes: readonly string[]): string {
  const p = prefixes.find((x) => url.startsWith(x));
  return p === undefined ? url : `${p}(withheld)`;
}

function logLine(
  ctx: ProxyContext,
  client: ClientConn,
  req: RequestHead,
  status: number,
  start: number,
  m: Member | null,
  sticky: boolean,
  attempts: number,
): void {
  ctx.logger.request({
    time: new Date().toISOString(),
    client: client.remoteAddress,
    method: req.method,
    url: withheld(req.url, ctx.withholdPaths),
    status,
    ms: Date.now() - start,
    member: m ? m.route : null,
    sticky,
    attempts,
  });
}
