// One client request, proxied to a member with retries on another member
// when that is safe. Listeners are module-level functions that find their
// Exchange through the emitter, so a request allocates no closures of ours.
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Balancer } from '../balancer';
import type { Member } from '../members';
import type { Metrics } from '../metrics';
import type { Logger } from '../log';
import { refuseStatus } from './incoming';
import { outgoingHeaders, hasBody, OutgoingOptions } from './outgoing';
import { responseHeaders, ReverseRewriter } from './response';

export interface Timeouts {
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
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'CONNECT_TIMEOUT']);

const kEx = Symbol('proxy-node.exchange');
type Tagged<T> = T & { [kEx]?: Exchange };

class Exchange {
  tried: Member[] | null = null;
  member: Member | null = null;
  upstream: Tagged<http.ClientRequest> | null = null;
  upstreamRes: http.IncomingMessage | null = null;
  sticky = false;
  attempts = 0;
  /** Response headers went to the client: no retry is possible any more. */
  responded = false;
  bodyStarted = false;
  connected = false;
  timedOut = '';
  status = 0;
  readBase = 0;
  writeBase = 0;
  done = false;
  lastMember: Member | null = null;
  readonly start = Date.now();
  readonly withBody: boolean;

  constructor(
    readonly ctx: ProxyContext,
    readonly req: http.IncomingMessage,
    readonly res: Tagged<http.ServerResponse>,
  ) {
    this.withBody = hasBody(req);
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
    res.on('close', onClientClose);
    ctx.metrics.inFlight++;
    attempt(ex);
  };
}

function attempt(ex: Exchange): void {
  const { ctx, req } = ex;
  const now = Date.now();
  const choice = ctx.balancer.choose(req.url ?? '/', req.headers.cookie, ex.tried, now);
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
  ex.connected = false;
  ex.bodyStarted = false;
  m.busy++;
  m.requests++;
  const up: Tagged<http.ClientRequest> = http.request({
    host: m.host,
    port: m.port,
    method: req.method,
    path: req.url,
    headers: outgoingHeaders(req, m.authority, ctx.outgoing),
    agent: m.agent,
    setHost: false,
  });
  up[kEx] = ex;
  ex.upstream = up;
  up.on('socket', onUpstreamSocket);
  up.on('response', onUpstreamResponse);
  up.on('error', onUpstreamError);
  up.on('timeout', onUpstreamTimeout);
  if (!ex.withBody) up.end();
}

function onUpstreamSocket(this: Tagged<http.ClientRequest>, socket: Socket): void {
  const ex = this[kEx];
  if (!ex) return;
  ex.readBase = socket.bytesRead;
  ex.writeBase = socket.bytesWritten;
  if (socket.connecting) {
    this.setTimeout(ex.ctx.timeouts.connectMs);
    socket.once('connect', onUpstreamConnect.bind(this));
  } else {
    ex.connected = true;
    this.setTimeout(ex.ctx.timeouts.headersMs);
    startBody(ex);
  }
}

function onUpstreamConnect(this: Tagged<http.ClientRequest>): void {
  const ex = this[kEx];
  if (!ex || ex.upstream !== this) return;
  ex.connected = true;
  this.setTimeout(ex.ctx.timeouts.headersMs);
  startBody(ex);
}

// The body is streamed only once the member is connected, so a refused
// connection leaves it unread and the request can go to another member.
function startBody(ex: Exchange): void {
  if (!ex.withBody || ex.bodyStarted || ex.upstream === null) return;
  ex.bodyStarted = true;
  ex.req.pipe(ex.upstream);
}

function onUpstreamTimeout(this: Tagged<http.ClientRequest>): void {
  const ex = this[kEx];
  if (!ex || ex.upstream !== this) return;
  ex.timedOut = ex.connected ? (ex.upstreamRes ? 'idle' : 'headers') : 'connect';
  const err = new Error(`upstream ${ex.timedOut} timeout`) as NodeJS.ErrnoException;
  err.code = ex.connected ? 'UPSTREAM_TIMEOUT' : 'CONNECT_TIMEOUT';
  this.destroy(err);
}

function onUpstreamError(this: Tagged<http.ClientRequest>, err: NodeJS.ErrnoException): void {
  const ex = this[kEx];
  if (!ex || ex.upstream !== this || ex.done) return;
  const m = ex.member as Member;
  const { ctx } = ex;
  ctx.metrics.upstreamErrors++;
  if (ex.timedOut) ctx.metrics.upstreamTimeouts++;
  m.errors++;
  releaseMember(ex);
  if (ex.responded || ex.upstreamRes !== null) {
    // Part of the response is already with the client: all we can do is cut it.
    ex.res.destroy();
    return;
  }
  const code = err.code ?? '';
  const connectFailed = !ex.connected || CONNECT_ERRORS.has(code);
  const reused = this.reusedSocket;
  // A keep-alive socket the member closed while we sent is not the member's
  // fault; anything else marks it in error until `retry` passes (passive check).
  if (connectFailed || !reused) m.markError(Date.now());
  const safe =
    !ex.bodyStarted &&
    (IDEMPOTENT.has(ex.req.method ?? '') || connectFailed || (reused && code === 'ECONNRESET') || ex.withBody);
  if (safe && ex.attempts <= ctx.balancer.maxRetries && !ex.res.destroyed && !ex.timedOut.startsWith('h')) {
    ctx.metrics.retries++;
    (ex.tried ??= []).push(m);
    ex.upstream = null;
    ex.timedOut = '';
    attempt(ex);
    return;
  }
  finishWithError(ex, ex.timedOut === 'headers' ? 504 : 502, ex.timedOut === 'headers' ? 'Gateway Timeout' : 'Bad Gateway');
}

function onUpstreamResponse(this: Tagged<http.ClientRequest>, up: Tagged<http.IncomingMessage>): void {
  const ex = this[kEx];
  if (!ex || ex.upstream !== this) return;
  const { ctx, res } = ex;
  const m = ex.member as Member;
  ex.upstreamRes = up;
  up[kEx] = ex;
  let cookieLine: string | null = null;
  const sc = ctx.setCookie;
  if (sc !== null && !(ex.sticky && choiceMatches(ex, m))) cookieLine = m.cookieLine;
  const headers = responseHeaders(up.rawHeaders, { rewriter: ctx.rewriter, via: ctx.via, cookieName: sc ? sc.name : '', setCookieLine: cookieLine });
  const status = up.statusCode ?? 502;
  ex.status = status;
  ex.responded = true;
  this.setTimeout(ctx.timeouts.idleMs);
  try {
    res.writeHead(status, up.statusMessage, headers);
  } catch (e) {
    // A member header node refuses to send (invalid characters): answer 502.
    ex.responded = false;
    ex.status = 0;
    this.destroy();
    finishWithError(ex, 502, 'Bad Gateway');
    return;
  }
  up.on('end', onUpstreamEnd);
  up.on('aborted', onUpstreamAborted);
  up.on('error', onUpstreamAborted);
  up.pipe(res);
}

// The request's route already names this member: the client has the cookie.
function choiceMatches(ex: Exchange, m: Member): boolean {
  const sc = ex.ctx.setCookie;
  if (sc === null) return false;
  const header = ex.req.headers.cookie;
  return header !== undefined && header.includes(`${sc.name}=${sc.valuePrefix}${m.route}`);
}

function onUpstreamEnd(this: Tagged<http.IncomingMessage>): void {
  const ex = this[kEx];
  if (ex) releaseMember(ex);
}

function onUpstreamAborted(this: Tagged<http.IncomingMessage>): void {
  const ex = this[kEx];
  if (!ex || ex.done) return;
  if (ex.member) ex.member.errors++;
  releaseMember(ex);
  ex.res.destroy();
}

/** Counts bytes and frees the member slot once per attempt. */
function releaseMember(ex: Exchange): void {
  const m = ex.member;
  if (m === null) return;
  const sock = ex.upstream?.socket;
  if (sock) {
    m.bytesIn += sock.bytesRead - ex.readBase;
    m.bytesOut += sock.bytesWritten - ex.writeBase;
  }
  m.busy--;
  ex.member = null;
  // Keep the member for the log line without holding the busy slot.
  ex.lastMember = m;
}

function onClientClose(this: Tagged<http.ServerResponse>): void {
  const ex = this[kEx];
  if (!ex || ex.done) return;
  ex.done = true;
  const { ctx } = ex;
  ctx.metrics.inFlight--;
  const finished = this.writableFinished;
  if (!finished && ex.upstream !== null) ex.upstream.destroy();
  if (ex.member !== null) releaseMember(ex);
  const status = finished ? ex.status || this.statusCode : 499;
  ctx.metrics.countStatus(status);
  if (ctx.logRequests) logLine(ctx, ex.req, status, ex.start, ex.lastMember, ex.sticky, ex.attempts);
}

function finishWithError(ex: Exchange, status: number, text: string): void {
  ex.status = status;
  if (ex.upstream !== null) {
    ex.upstream.destroy();
    ex.upstream = null;
  }
  if (ex.res.headersSent || ex.res.destroyed) {
    ex.res.destroy();
    return;
  }
  // The request body may be unread; closing avoids parsing it as a next request.
  sendPlain(ex.res, status, text, ex.withBody && !ex.req.complete);
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

