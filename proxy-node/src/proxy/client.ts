// Client connections on plain net sockets: reads requests with
// request-parser.ts, hands each to the proxy (one at a time; pipelined
// requests wait their turn), and writes the response framing. Timeouts are
// deadlines checked by one sweep per server (server.ts) rather than a timer per
// socket, because re-arming a timer on every read and write is measurable per request.
import * as net from "node:net";
import { parseRequestHead, RequestHead, RequestError, BodyDecoder, BodySink, Framing, STATUS_TEXT } from "./request-parser";
import { ResBody } from "./response-parser";
import type { ProxyServer } from "./server";
import { unmapped } from "../cidr";

export interface ClientLimits {
  maxHeaderSize: number;
  maxHeadersCount: number;
  /** From the first byte of a request until its head is complete. */
  headersMs: number;
  /** From a complete head until the request body is complete; 0 for no limit. */
  requestMs: number;
  /** Idle time between requests on a keep-alive connection. */
  keepAliveMs: number;
}

/** What a connection reports to the exchange serving its current request. */
export interface ClientUser extends BodySink {
  bodyEnd(): void;
  /** The body turned out malformed or too slow after the head was accepted. */
  bodyError(err: RequestError): void;
  clientDrained(): void;
  /** The client went away (or was cut) before the response was complete. */
  clientGone(): void;
}

export interface ServerHandlers {
  request(conn: ClientConn, head: RequestHead): void;
  /** The socket is the handler's from now on; `rest` is what the client sent after the head. */
  upgrade(conn: ClientConn, head: RequestHead, socket: net.Socket, rest: Buffer): void;
  /** A request refused while parsing (no exchange was created). */
  refused(status: number): void;
}

const enum State {
  Head,
  /** Head handed to the proxy; the body (if any) is read when the proxy asks. */
  Body,
  /** Request complete; waiting for the response to finish. */
  Wait,
  /** Response sent, closing: input is read and dropped so the client sees no reset. */
  Closing,
  Closed,
}

const enum Deadline {
  None,
  Head,
  Body,
  KeepAlive,
  Linger,
}

const CRLFCRLF = Buffer.from("\r\n\r\n");
const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";
/** After our FIN, how long a client may take to close before we cut the connection. */
export const LINGER_MS = 2000;
/** Bytes of pipelined input held while a response is in flight before reading pauses. */
const MAX_PENDING = 256 * 1024;

/** An LF not preceded by CR in buf[from..], the head having started at `start`. */
function hasBareLf(buf: Buffer, start: number, from: number): boolean {
  for (let i = buf.indexOf(10, from); i >= 0; i = buf.indexOf(10, i + 1)) {
    if (i === start || buf[i - 1] !== 13) return true;
  }
  return false;
}

const kConn = Symbol("proxy-node.client");
type TaggedSocket = net.Socket & { [kConn]?: ClientConn };

export class ClientConn {
  private state = State.Head;
  private pending: Buffer | null = null;
  private scanFrom = 0;
  private headStarted = false;
  private bodyWanted = false;
  private readonly decoder: BodyDecoder;
  private corked = false;
  private chunkedOut = false;
  private closeAfter = false;
  private clientEnded = false;
  private paused = false;
  private userPaused = false;
  private awaitDrain = false;
  deadline = 0;
  private deadlineKind = Deadline.None;
  head: RequestHead | null = null;
  user: ClientUser | null = null;
  /** The response head went out: a failure now can only cut the connection. */
  headSent = false;
  private ip: string | undefined;
  /** When it was accepted, and whether a request has started on it (see ProxyServer.closeIdle). */
  readonly since = Date.now();
  used = false;

  constructor(
    readonly socket: TaggedSocket,
    private readonly server: ProxyServer,
  ) {
    socket[kConn] = this;
    this.decoder = new BodyDecoder(server.limits.maxHeaderSize);
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onClose);
    socket.on("error", onError);
    socket.on("drain", onDrain);
    // Until the first byte: as long as a request head may take. Browsers open
    // connections ahead of need; an unused one is closed without a word.
    this.setDeadline(Deadline.KeepAlive, server.limits.headersMs);
  }

  get closed(): boolean {
    return this.state === State.Closed || this.socket.destroyed;
  }

  /** Peer address, looked up once per connection (it is a syscall); an IPv4 client as IPv4 (cidr.ts, unmapped). */
  get remoteAddress(): string {
    return (this.ip ??= unmapped(this.socket.remoteAddress ?? ""));
  }

  /** No request in progress: safe to close during shutdown. */
  get idle(): boolean {
    return this.state === State.Head && !this.headStarted && this.user === null;
  }

  private setDeadline(kind: Deadline, ms: number): void {
    this.deadlineKind = kind;
    this.deadline = kind === Deadline.None || ms <= 0 ? 0 : Date.now() + ms;
  }

  onData(d: Buffer): void {
    if (this.state === State.Closing || this.state === State.Closed) return;
    if ((this.state === State.Body && !this.bodyWanted) || this.state === State.Wait) {
      // Early body bytes or a pipelined request: kept until their turn.
      this.pending = this.pending === null ? d : Buffer.concat([this.pending, d]);
      if (this.pending.length > MAX_PENDING) this.pause();
      return;
    }
    if (this.pending !== null) {
      d = Buffer.concat([this.pending, d]);
      this.pending = null;
    }
    this.process(d, 0);
  }

  /**
   * Handles what `buf` holds from `pos` in the current state. Each call takes
   * one step (a head, or body bytes); what belongs to a later turn is kept.
   */
  private process(buf: Buffer, pos: number): void {
    const len = buf.length;
    if (pos >= len) return;
    if (this.state === State.Head) {
      if (!this.headStarted) {
        // RFC 9112 2.2: empty lines before a request line are ignored.
        while (pos < len && (buf[pos] === 13 || buf[pos] === 10)) pos++;
        if (pos === len) return;
        this.headStarted = true;
        this.scanFrom = pos;
        this.setDeadline(Deadline.Head, this.server.limits.headersMs);
      }
      const end = buf.indexOf(CRLFCRLF, Math.max(pos, this.scanFrom));
      const max = this.server.limits.maxHeaderSize;
      if (end < 0 || end - pos > max) {
        if (len - pos > max) return this.refuse(new RequestError(431, "request head too large"));
        // A bare LF anywhere in an unfinished head (the end may be "\n\r\n" or
        // "\n\n") would otherwise wait here until the head timeout.
        if (hasBareLf(buf, pos, Math.max(pos, this.scanFrom))) return this.refuse(new RequestError(400, "bare LF line ending in the request head"));
        this.keep(buf, pos);
        this.scanFrom = Math.max(0, (this.pending as Buffer).length - 3);
        return;
      }
      const text = buf.toString("latin1", pos, end);
      let head: RequestHead;
      try {
        head = parseRequestHead(text, this.server.limits.maxHeadersCount);
      } catch (e) {
        if (e instanceof RequestError) return this.refuse(e);
        throw e;
      }
      this.startRequest(head, buf, end + 4);
      return;
    }
    if (this.state === State.Body && this.bodyWanted) {
      const user = this.user;
      try {
        pos = this.decoder.execute(buf, pos, user ?? DISCARD);
      } catch (e) {
        if (!(e instanceof RequestError)) throw e;
        this.bodyFailed(e);
        return;
      }
      if (!this.decoder.done) return;
      this.state = State.Wait;
      this.setDeadline(Deadline.None, 0);
      this.keep(buf, pos);
      if (user !== null) user.bodyEnd();
      return;
    }
    // Body not asked for yet, or a pipelined request while a response is due.
    this.keep(buf, pos);
  }

  /** Keeps buf[pos..] (if anything) as pending input for a later turn. */
  private keep(buf: Buffer, pos: number): void {
    if (pos < buf.length) this.pending = pos === 0 ? buf : buf.subarray(pos);
  }

  private startRequest(head: RequestHead, buf: Buffer, pos: number): void {
    this.used = true;
    this.head = head;
    this.userPaused = false;
    this.headSent = false;
    this.chunkedOut = false;
    this.bodyWanted = false;
    this.closeAfter = !head.keepAlive || this.server.closing;
    if (head.upgrade !== undefined) {
      if (this.server.closing) {
        // A new tunnel would only hold the stop up; the client retries elsewhere.
        this.server.handlers.refused(503);
        this.state = State.Wait;
        this.sendSimple(503, "Shutting down", ["Retry-After", "1"]);
        return;
      }
      this.detach();
      this.server.handlers.upgrade(this, head, this.socket, buf.subarray(pos));
      return;
    }
    this.decoder.start(head.framing, head.contentLength);
    if (this.decoder.done) {
      this.state = State.Wait;
      this.setDeadline(Deadline.None, 0);
    } else {
      this.state = State.Body;
      // The body deadline starts in readBody(): waiting for a member is not the client's delay.
      this.setDeadline(Deadline.None, 0);
    }
    this.keep(buf, pos);
    this.server.handlers.request(this, head);
  }

  /** The proxy is ready for the body (the member is connected): start delivering it. */
  readBody(): void {
    if (this.state !== State.Body || this.bodyWanted || this.socket.destroyed) return;
    this.bodyWanted = true;
    this.setDeadline(Deadline.Body, this.server.limits.requestMs);
    const head = this.head as RequestHead;
    if (head.expectContinue && head.minor === 1 && this.pending === null && !this.headSent && !this.clientEnded) this.socket.write(CONTINUE, "latin1");
    const p = this.pending;
    this.pending = null;
    if (p !== null) this.process(p, 0);
    if (this.state !== State.Body) return;
    // A client that shut down its side before the whole body came will send no more.
    if (this.clientEnded) this.socket.destroy();
    else this.resume();
  }

  /** Backpressure from the member side; only resumeBody() lifts it. */
  pauseBody(): void {
    this.userPaused = true;
    this.pause();
  }

  resumeBody(): void {
    this.userPaused = false;
    this.resume();
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private resume(): void {
    if (this.paused && !this.userPaused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * Starts the response. `headers` are end-to-end fields already filtered by
   * the caller; framing and Connection are ours to write.
   */
  sendHead(status: number, reason: string, headers: readonly string[], body: ResBody, contentLength: number): void {
    const head = this.head as RequestHead;
    let s = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
    // A length with no body (HEAD, 304) still describes the representation; 204 never has one (RFC 9110 8.6).
    if (contentLength >= 0 && (body === ResBody.Length || (body === ResBody.None && status !== 204))) s += `Content-Length: ${contentLength}\r\n`;
    else if (body === ResBody.Chunked || body === ResBody.UntilClose) {
      // The member's framing is not ours to copy: re-frame for this client.
      if (head.minor === 1) {
        this.chunkedOut = true;
        s += "Transfer-Encoding: chunked\r\n";
      } else this.closeAfter = true;
    }
    // Answered before the request body was read: the next request's start is
    // unknown, so this connection ends after the response, and says so.
    if (this.server.closing || this.state === State.Body) this.closeAfter = true;
    if (this.closeAfter) s += "Connection: close\r\n\r\n";
    else s += head.minor === 0 ? "Connection: keep-alive\r\n\r\n" : "\r\n";
    this.headSent = true;
    // Corked until the caller's flush(): head and first body bytes leave in one write.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    this.socket.write(s, "latin1");
  }

  /** This response is the connection's last. */
  closeAfterResponse(): void {
    this.closeAfter = true;
  }

  /** Writes body bytes; false means wait for clientDrained(). */
  sendBody(chunk: Buffer): boolean {
    const sock = this.socket;
    if (!this.chunkedOut) return sock.write(chunk);
    sock.write(`${chunk.length.toString(16)}\r\n`, "latin1");
    sock.write(chunk);
    return sock.write("\r\n", "latin1");
  }

  flush(): void {
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }

  /** Completes the response; the connection then serves the next request or closes. */
  endResponse(): void {
    if (this.chunkedOut) this.socket.write("0\r\n\r\n", "latin1");
    this.flush();
    this.user = null;
    this.finishExchange();
  }

  /** A complete response of our own (errors, refusals). */
  sendSimple(status: number, text: string, extra: readonly string[] = []): void {
    const body = `${status} ${text}\n`;
    const headers = ["Content-Type", "text/plain; charset=utf-8", ...extra];
    this.sendHead(status, STATUS_TEXT[status] ?? text, headers, ResBody.Length, body.length);
    if ((this.head as RequestHead).method !== "HEAD") this.socket.write(body, "latin1");
    this.endResponse();
  }

  private finishExchange(): void {
    // The exchange is over: its backpressure no longer holds the socket.
    this.userPaused = false;
    // A request body still unread (sendHead said so) leaves the next request's start unknown.
    if (this.closeAfter || this.state === State.Body || (this.clientEnded && this.pending === null)) {
      this.linger();
      return;
    }
    if (this.state !== State.Wait) return;
    // Ready for the next request on this connection.
    this.state = State.Head;
    this.headStarted = false;
    this.head = null;
    this.setDeadline(Deadline.KeepAlive, this.server.limits.keepAliveMs);
    if (this.pending === null) {
      this.resume();
      return;
    }
    // Pipelined input is served on a later turn, and only once the client reads
    // its answers: a long pipeline can neither recurse, nor starve other
    // connections, nor make us buffer responses nobody reads.
    this.pause();
    if (this.socket.writableNeedDrain) this.awaitDrain = true;
    else setImmediate(nextPipelined, this);
  }

  /** Serves the next pipelined request (see finishExchange). */
  nextPipelined(): void {
    if (this.state !== State.Head) return;
    const p = this.pending;
    this.pending = null;
    this.resume();
    if (p !== null) this.process(p, 0);
    // A client that sent its last request and shut down its side: nothing more will come.
    if (this.clientEnded && this.state === State.Head) {
      if (this.headStarted) this.socket.destroy();
      else this.linger();
    }
  }

  onDrain(): void {
    if (this.user !== null) this.user.clientDrained();
    else if (this.awaitDrain) {
      this.awaitDrain = false;
      this.nextPipelined();
    }
  }

  /** Ends our side, keeps reading (and dropping) so the client is not reset before it has read the response. */
  private linger(): void {
    this.state = State.Closing;
    this.pending = null;
    this.resume();
    this.setDeadline(Deadline.Linger, LINGER_MS);
    this.socket.end();
  }

  /** Cuts the connection (a response that cannot be completed). */
  abort(): void {
    this.flush();
    this.socket.destroy();
  }

  private refuse(err: RequestError): void {
    this.server.handlers.refused(err.status);
    this.head ??= REFUSED_HEAD;
    this.closeAfter = true;
    this.state = State.Wait;
    this.sendSimple(err.status, STATUS_TEXT[err.status] ?? "Bad Request");
  }

  private bodyFailed(err: RequestError): void {
    this.closeAfter = true;
    const user = this.user;
    if (user !== null) user.bodyError(err);
    else this.abort();
  }

  timedOut(): void {
    const kind = this.deadlineKind;
    this.setDeadline(Deadline.None, 0);
    if (kind === Deadline.Head && this.state === State.Head) this.refuse(new RequestError(408, "request head not received in time"));
    else if (kind === Deadline.Body && this.state === State.Body) this.bodyFailed(new RequestError(408, "request body not received in time"));
    else if (kind === Deadline.KeepAlive || kind === Deadline.Linger) this.socket.destroy();
  }

  onEnd(): void {
    this.clientEnded = true;
    switch (this.state) {
      case State.Wait:
      case State.Closing:
        // A half-closed client may still wait for its response.
        return;
      case State.Body:
        // Unread body bytes may complete the request; readBody() decides.
        if (!this.bodyWanted) return;
        break;
      case State.Head:
        if (!this.headStarted && this.user === null) {
          this.socket.end();
          return;
        }
        break;
    }
    this.socket.destroy();
  }

  onClose(): void {
    this.state = State.Closed;
    this.server.forget(this);
    const u = this.user;
    this.user = null;
    if (u !== null) u.clientGone();
  }

  /** Hands the socket over (upgrade): no more reading, timeouts or accounting here. */
  private detach(): void {
    const s = this.socket;
    s.off("data", onData);
    s.off("end", onEnd);
    s.off("close", onClose);
    s.off("drain", onDrain);
    s.off("error", onError);
    s[kConn] = undefined;
    // Not flowing until the new owner pipes it, so no byte is lost in between.
    s.pause();
    this.state = State.Closed;
    this.server.forget(this);
    this.server.adoptTunnel(s);
  }
}

const DISCARD: BodySink = { bodyData: () => undefined };
const REFUSED_HEAD: RequestHead = {
  method: "",
  url: "",
  minor: 1,
  raw: [],
  host: undefined,
  cookie: undefined,
  hopTokens: null,
  framing: Framing.None,
  contentLength: -1,
  keepAlive: false,
  expectContinue: false,
  upgrade: undefined,
};

function onData(this: TaggedSocket, d: Buffer): void {
  this[kConn]?.onData(d);
}
function onEnd(this: TaggedSocket): void {
  this[kConn]?.onEnd();
}
function onClose(this: TaggedSocket): void {
  this[kConn]?.onClose();
}
function onError(this: TaggedSocket): void {
  // 'close' follows; a client resetting its connection is not our error.
}
function onDrain(this: TaggedSocket): void {
  this[kConn]?.onDrain();
}
function nextPipelined(c: ClientConn): void {
  c.nextPipelined();
}
