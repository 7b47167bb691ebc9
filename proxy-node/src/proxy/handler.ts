// One client request, proxied to a member with retries on another member
// when that is safe. Listeners are module-level functions that find their
// Exchange through the emitter, so a request allocates no closures of ours.
import * as http from 'node:http';
import type { Balancer } from '../balancer';
import type { Member } from '../members';
import type { Metrics } from '../metrics';
import type { Logger } from '../log';
import { refuseStatus } from './incoming';
import { outgoingHeaders, hasBody, OutgoingOptions } from './outgoing';
import { responseHeaders, ReverseRewriter } from './response';
import type { Conn, UpstreamError, UpstreamUser } from './upstream';
import type { ResponseHead } from './parse';

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
  outgoing: OutgoingOptions;
  rewriter: ReverseRewriter;
  via: string | null;
  /** Sticky cookie proxy-node sets itself, or null. */
  setCookie: { name: string; valuePrefix: string; attributes: string } | null;
  timeouts: Timeouts;
  maxHeadersCount: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const kEx = Symbol('proxy-node.exchange');
type Tagged<T> = T & { [kEx]?: Exchange };

/** Framing of the request body towards the member. */
const enum Body {
  None,
  Length,
  Chunked,
}

class Exchange implements UpstreamUser {
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
  readonly framing: Body;

  constructor(
    readonly ctx: ProxyContext,
    readonly req: Tagged<http.IncomingMessage>,
    readonly res: Tagged<http.ServerResponse>,
  ) {
    this.framing = req.headers['transfer-encoding'] !== undefined ? Body.Chunked : hasBody(req) ? Body.Length : Body.None;
  }

  // UpstreamUser: the pool calls these.

  attached(conn: Conn): void {
    this.conn = conn;
  }

  ready(conn: Conn): void {
    this.conn = conn;
    conn.setTimeout(this.ctx.timeouts.headersMs);
    const { req } = this;
    const headers = outgoingHeaders(req, (this.member as Member).authority, this.ctx.outgoing);
    let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      // The chunked framing is ours to write, below; node already decoded the client's.
      if (this.framing === Body.Chunked && headers[i] === 'Transfer-Encoding') continue;
      head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    if (this.framing === Body.Chunked) head += 'Transfer-Encoding: chunked\r\n';
    head += '\r\n';
    conn.write(head);
    if (this.framing === Body.None) {
      this.requestSent = true;
      return;
    }
    // The body is read only once the member is connected, so a refused
    // connection leaves it unread and the request can go to another member.
    this.bodyStarted = true;
    req.on('data', onRequestData);
    req.on('end', onRequestEnd);
    if (req.isPaused()) req.resume();
  }

  head(h: ResponseHead): void {
    if (this.done) {
      // The client left while the member was answering.
      this.releaseConn(false);
      return;
    }
    const { ctx, res } = this;
    const m = this.member as Member;
    const sc = ctx.setCookie;
    let cookieLine: string | null = null;
    if (sc !== null && !(this.sticky && cookieNamesMember(this, m))) cookieLine = m.cookieLine;
    const headers = responseHeaders(h.raw, { rewriter: ctx.rewriter, via: ctx.via, cookieName: sc ? sc.name : '', setCookieLine: cookieLine });
    this.status = h.status;
    this.keepAlive = h.keepAlive;
    this.responded = true;
    (this.conn as Conn).setTimeout(ctx.timeouts.idleMs);
    try {
      res.writeHead(h.status, h.reason, headers);
    } catch {
      // A member header node refuses to send (invalid characters): answer 502.
      this.responded = false;
      this.status = 0;
      this.releaseConn(false);
      this.releaseMember();
      finishWithError(this, 502, 'Bad Gateway');
    }
  }

  body(chunk: Buffer): void {
    if (this.done || !this.responded) return;
    if (!this.res.write(chunk) && !this.upstreamPaused && this.conn !== null) {
      this.upstreamPaused = true;
      this.conn.socket.pause();
      this.res.once('drain', onClientDrain);
    }
  }

  complete(conn: Conn): void {
    this.conn = conn;
    if (!this.responded) return;
    this.res.end();
    this.releaseConn(this.keepAlive && this.requestSent);
    this.releaseMember();
  }

  failed(err: UpstreamError): void {
    this.conn = null;
    if (this.done) return;
    const m = this.member;
    const { ctx } = this;
    ctx.metrics.upstreamErrors++;
    const timeout = err.code === 'TIMEOUT' || err.code === 'CONNECT_TIMEOUT';
    if (timeout) ctx.metrics.upstreamTimeouts++;
    if (m !== null) {
      m.errors++;
      // A pooled connection the member closed while we sent is not the member's
      // fault; anything else marks it in error until `retry` passes (passive check).
      if (err.connectFailed || !err.reused || timeout) m.markError(Date.now());
    }
    this.releaseMember();
    if (this.responded) {
      // Part of the response is already with the client: all we can do is cut it.
      this.res.destroy();
      return;
    }
    const retryable =
      err.beforeResponse &&
      !this.bodyStarted &&
      err.code !== 'TIMEOUT' &&
      (IDEMPOTENT.has(this.req.method ?? '') || err.connectFailed || (err.reused && err.code === 'ECONNRESET') || this.framing !== Body.None);
    if (retryable && m !== null && this.attempts <= ctx.balancer.maxRetries && !this.res.destroyed) {
      ctx.metrics.retries++;
      (this.tried ??= []).push(m);
      attempt(this);
      return;
    }
    if (err.code === 'TIMEOUT') finishWithError(this, 504, 'Gateway Timeout');
    else finishWithError(this, 502, 'Bad Gateway');
  }

  drained(): void {
    if (this.bodyPaused) {
      this.bodyPaused = false;
      this.req.resume();
    }
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

export function createRequestHandler(getCtx: () => ProxyContext): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return function handleRequest(req, res) {
    const ctx = getCtx();
    ctx.metrics.requests++;
    let refuse = refuseStatus(req);
    if (refuse === 0 && req.rawHeaders.length > ctx.maxHeadersCount * 2) refuse = 431;
    if (refuse !== 0) {
      ctx.metrics.refused++;
      sendPlain(res, refuse, refuse === 431 ? 'Request Header Fields Too Large' : 'Refused', true);
      ctx.metrics.countStatus(refuse);
      if (ctx.logRequests) logLine(ctx, req, refuse, Date.now(), null, false, 0);
      return;
    }
    const ex = new Exchange(ctx, req, res);
    (res as Tagged<http.ServerResponse>)[kEx] = ex;
    (req as Tagged<http.IncomingMessage>)[kEx] = ex;
    res.on('close', onClientClose);
    ctx.metrics.inFlight++;
    attempt(ex);
  };
}

function attempt(ex: Exchange): void {
  const { ctx, req } = ex;
  const choice = ctx.balancer.choose(req.url ?? '/', req.headers.cookie, ex.tried, Date.now());
  const m = choice.member;
  if (m === null) {
    ctx.metrics.noMember++;
    // nofailover (choice.sticky) answers 503 like Apache, also after a failed try.
    if (ex.attempts === 0 || choice.sticky) finishWithError(ex, 503, 'No member available');
    else finishWithError(ex, 502, 'Bad Gateway');
    return;
  }
  ex.attempts++;
  ex.member = m;
  ex.sticky = choice.sticky;
  m.busy++;
  m.requests++;
  m.pool.acquire(ex, req.method === 'HEAD');
}

function onRequestData(this: Tagged<http.IncomingMessage>, chunk: Buffer): void {
  const ex = this[kEx];
  const conn = ex?.conn;
  if (!ex || !conn) return;
  let ok: boolean;
  if (ex.framing === Body.Chunked) {
    conn.write(`${chunk.length.toString(16)}\r\n`);
    conn.write(chunk);
    ok = conn.write('\r\n');
  } else ok = conn.write(chunk);
  if (!ok && !ex.bodyPaused) {
    ex.bodyPaused = true;
    this.pause();
  }
}

function onRequestEnd(this: Tagged<http.IncomingMessage>): void {
  const ex = this[kEx];
  if (!ex) return;
  if (ex.framing === Body.Chunked && ex.conn) ex.conn.write('0\r\n\r\n');
  ex.requestSent = true;
}

function onClientDrain(this: Tagged<http.ServerResponse>): void {
  const ex = this[kEx];
  if (!ex) return;
  ex.upstreamPaused = false;
  ex.conn?.socket.resume();
}

// The request's cookie already names this member: the client has the cookie.
function cookieNamesMember(ex: Exchange, m: Member): boolean {
  const sc = ex.ctx.setCookie;
  if (sc === null) return false;
  const header = ex.req.headers.cookie;
  return header !== undefined && header.includes(`${sc.name}=${sc.valuePrefix}${m.route}`);
}

function onClientClose(this: Tagged<http.ServerResponse>): void {
  const ex = this[kEx];
  if (!ex || ex.done) return;
  ex.done = true;
  const { ctx } = ex;
  ctx.metrics.inFlight--;
  const finished = this.writableFinished;
  if (ex.conn !== null) ex.releaseConn(false);
  else if (ex.member !== null) ex.member.pool.cancel(ex);
  if (ex.member !== null) ex.releaseMember();
  const status = finished ? ex.status || this.statusCode : 499;
  ctx.metrics.countStatus(status);
  if (ctx.logRequests) logLine(ctx, ex.req, status, ex.start, ex.lastMember, ex.sticky, ex.attempts);
}

function finishWithError(ex: Exchange, status: number, text: string): void {
  ex.status = status;
  ex.releaseConn(false);
  if (ex.res.headersSent || ex.res.destroyed) {
    ex.res.destroy();
    return;
  }
  // The request body may be unread; closing avoids parsing it as a next request.
  sendPlain(ex.res, status, text, ex.framing !== Body.None && !ex.req.complete);
}

function sendPlain(res: http.ServerResponse, status: number, text: string, close: boolean): void {
  const body = `${status} ${text}\n`;
  const headers: string[] = ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(body))];
  if (status === 503) headers.push('Retry-After', '1');
  if (close) headers.push('Connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
}

function logLine(ctx: ProxyContext, req: http.IncomingMessage, status: number, start: number, m: Member | null, sticky: boolean, attempts: number): void {
  ctx.logger.request({
    time: new Date().toISOString(),
    client: req.socket.remoteAddress,
    method: req.method,
    url: req.url,
    status,
    ms: Date.now() - start,
    member: m ? m.route : null,
    sticky,
    attempts,
  });
}

