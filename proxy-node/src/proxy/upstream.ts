// Keep-alive connection pool to one member, on plain net sockets with the
// response parser in response-parser.ts. One pool per member; at most `maxSockets`
// connections, upgraded ones included; requests beyond that wait in FIFO
// order, at most `maxQueue` of them and each at most `queueMs` (then 503, as
// HAProxy's `timeout queue`). Listeners are set once per socket, never per request.
//
// A member cut off from the network sends no reset: a request written on a
// kept-alive connection would wait for the answer timeout. So when a request
// the handler could resend (idempotent, no body) has waited `STALL_MS` for its
// first byte, the pool checks that the member still accepts connections. Only
// if it accepts none within the connect deadline, and nothing else came from it
// meanwhile (no byte on any of its connections, no connect completed), do the
// resendable requests waiting on it fail as UNREACHABLE and go elsewhere. The
// silence matters: a member whose accept queue is full drops a check's SYN as a
// cut-off one does, but a busy member keeps answering its other requests.
// Requests that cannot be resent are left to their own answer timeout. A hung
// host still accepts (its kernel does the handshake), so its requests keep
// waiting for their timeout too. Times are monotonic (performance.now()).
import * as net from "node:net";
import { ResponseParser, ResponseHead, ResponseSink, ParseError } from "./response-parser";

/** What a pool connection reports to the request using it. */
export interface UpstreamUser {
  /** The request may be sent again to another member (idempotent, no body): only such requests are failed by a reachability check. */
  readonly resendable: boolean;
  /** This connection is now the user's (it may still be connecting). */
  attached(conn: Conn): void;
  /** The connection is ready for this request's bytes (new and connected, or reused). */
  ready(conn: Conn): void;
  head(h: ResponseHead): void;
  body(chunk: Buffer): void;
  complete(conn: Conn): void;
  /** Connection failed or closed before the response was complete. */
  failed(err: UpstreamError): void;
  /** The socket drained after a write returned false. */
  drained(): void;
  /** End of one read from the member: what was written to the client may leave now. */
  flush(): void;
}

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** Nothing was received from the member for this request. */
    readonly beforeResponse: boolean,
    /** The TCP connection was never established. */
    readonly connectFailed: boolean,
    /** The request was sent on a connection reused from the pool. */
    readonly reused: boolean,
  ) {
    super(message);
  }
}

export interface PoolCounters {
  bytesIn: number;
  bytesOut: number;
}

const kConn = Symbol("proxy-node.conn");
type TaggedSocket = net.Socket & { [kConn]?: Conn };

export class Conn implements ResponseSink {
  user: UpstreamUser | null = null;
  readonly parser = new ResponseParser();
  connected = false;
  reused = false;
  gotResponseBytes = false;
  /** When the current request was handed its connection, performance.now() (0: none yet). */
  sentAt = 0;
  dead = false;
  /** Closed to make room for an upgrade, which took over its slot in the pool's count. */
  slotHandedOver = false;
  private err: Error | null = null;

  constructor(
    readonly pool: Pool,
    readonly socket: TaggedSocket,
  ) {
    socket[kConn] = this;
  }

  assign(user: UpstreamUser, headRequest: boolean): void {
    this.user = user;
    this.gotResponseBytes = false;
    this.sentAt = 0;
    this.parser.start(this, headRequest);
    this.pool.busy.add(this);
    user.attached(this);
    if (this.connected) {
      this.socket.ref();
      this.sentAt = performance.now();
      user.ready(this);
    }
  }

  /** Writes request bytes; false means wait for drained(). */
  write(data: string | Buffer): boolean {
    this.pool.counters.bytesOut += data.length;
    return typeof data === "string" ? this.socket.write(data, "latin1") : this.socket.write(data);
  }

  setTimeout(ms: number): void {
    this.socket.setTimeout(ms);
  }

  // ResponseSink: forwarded to the current user.
  head(h: ResponseHead): void {
    this.user?.head(h);
  }

  body(chunk: Buffer): void {
    this.user?.body(chunk);
  }

  complete(): void {
    const u = this.user;
    this.user = null;
    this.pool.busy.delete(this);
    if (u) u.complete(this);
  }

  /** Return to the pool (keepAlive) or close. Called by the user after complete(). */
  release(keepAlive: boolean): void {
    this.user = null;
    this.pool.busy.delete(this);
    // Paused for a slow client whose response then completed: the next user must get data.
    if (this.socket.isPaused()) this.socket.resume();
    if (keepAlive && !this.dead && this.parser.idle) this.pool.recycle(this);
    else this.destroy();
  }

  destroy(): void {
    this.user = null;
    this.pool.busy.delete(this);
    if (!this.dead) this.socket.destroy();
  }

  /** The request has its connection, no byte of an answer yet, and may be resent: the reachability check may fail it. */
  waitingAndResendable(): boolean {
    return this.user !== null && this.user.resendable && this.sentAt !== 0 && !this.gotResponseBytes;
  }

  onData(d: Buffer): void {
    this.pool.counters.bytesIn += d.length;
    this.pool.lifeSigns++;
    if (this.user === null) {
      // Bytes nobody asked for: the connection cannot be trusted any more.
      this.socket.destroy();
      return;
    }
    this.gotResponseBytes = true;
    const user = this.user;
    try {
      this.parser.execute(d);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      this.fail(new UpstreamError(`invalid response from member: ${e.message}`, "BAD_RESPONSE", false, false, this.reused));
    }
    user.flush();
  }

  onError(err: Error): void {
    this.err = err;
  }

  onClose(): void {
    this.dead = true;
    this.pool.busy.delete(this);
    this.pool.forget(this);
    if (this.user === null) return;
    if (this.parser.readsUntilClose && this.parser.closed()) return;
    const code = (this.err as NodeJS.ErrnoException | null)?.code ?? "ECONNRESET";
    this.fail(new UpstreamError(this.err?.message ?? "member closed the connection", code, !this.gotResponseBytes, !this.connected, this.reused));
  }

  onConnect(): void {
    this.connected = true;
    this.pool.lifeSigns++;
    if (this.user) {
      this.sentAt = performance.now();
      this.user.ready(this);
    }
  }

  onTimeout(): void {
    if (this.user === null) {
      // Idle in the pool for too long: close before the member does.
      this.socket.destroy();
      return;
    }
    const phase = this.connected ? "TIMEOUT" : "CONNECT_TIMEOUT";
    this.fail(new UpstreamError(this.connected ? "member timed out" : "connect timeout", phase, !this.gotResponseBytes, !this.connected, this.reused));
  }

  fail(err: UpstreamError): void {
    const u = this.user;
    this.user = null;
    this.pool.busy.delete(this);
    this.socket.destroy();
    if (u) u.failed(err);
  }
}

function onSocketData(this: TaggedSocket, d: Buffer): void {
  this[kConn]?.onData(d);
}
function onSocketError(this: TaggedSocket, err: Error): void {
  this[kConn]?.onError(err);
}
function onSocketClose(this: TaggedSocket): void {
  this[kConn]?.onClose();
}
function onSocketConnect(this: TaggedSocket): void {
  this[kConn]?.onConnect();
}
function onSocketTimeout(this: TaggedSocket): void {
  this[kConn]?.onTimeout();
}
function onSocketDrain(this: TaggedSocket): void {
  this[kConn]?.user?.drained();
}
function onQueueTimeout(pool: Pool, user: UpstreamUser): void {
  pool.expire(user);
}

interface Waiter {
  user: UpstreamUser;
  head: boolean;
  timer: NodeJS.Timeout;
}

/** Why a request never got a member connection. */
export type QueueRefusal = "full" | "timeout";

export interface QueueCounters {
  queueRefused: Record<QueueRefusal, number>;
}

/** A request that has waited this long for its first answer byte makes the pool check that its member still accepts connections. */
export const STALL_MS = 500;
/** A request still waiting after a check that found its member reachable is checked again after this long. */
export const RECHECK_MS = 5000;
const SWEEP_MS = 250;

function onSweep(pool: Pool): void {
  pool.sweep(performance.now());
}

export class Pool {
  private free: Conn[] = [];
  private waiting: Waiter[] = [];
  /** Connections handed to a request and not yet given back. */
  readonly busy = new Set<Conn>();
  total = 0;
  private closed = false;
  private sweeper: NodeJS.Timeout | null = null;
  /** Start of the last reachability check (performance.now()); a request sent after it is not covered by its result. */
  private checkStartedAt = 0;
  /** Counts bytes read and connects completed on this pool's connections: any change during a check means the member is there. */
  lifeSigns = 0;
  private checking = false;
  /** Requests failed because their member stopped accepting connections. */
  unreachableFailures = 0;
  /** Reachability checks started (stalled requests share one). */
  reachabilityChecks = 0;

  constructor(
    readonly host: string,
    readonly port: number,
    public maxSockets: number,
    public maxQueue: number,
    public queueMs: number,
    public connectMs: number,
    public idleMs: number,
    readonly counters: PoolCounters,
    /** Where refusals are counted for /metrics; set by the app. */
    public queueCounters: QueueCounters | null = null,
  ) {}

  /** Gets a connection for `user`; user.ready() is called when it can write. */
  acquire(user: UpstreamUser, headRequest: boolean): void {
    if (this.sweeper === null && !this.closed) {
      this.sweeper = setInterval(onSweep, SWEEP_MS, this);
      this.sweeper.unref();
    }
    // Most recently used first: keeps few sockets warm, lets the rest age out.
    const conn = this.free.pop();
    if (conn !== undefined) {
      conn.reused = true;
      conn.assign(user, headRequest);
      return;
    }
    if (this.total < this.maxSockets && !this.closed) {
      this.connect().assign(user, headRequest);
      return;
    }
    if (this.waiting.length >= this.maxQueue) {
      this.refuse(user, "full");
      return;
    }
    const w: Waiter = { user, head: headRequest, timer: setTimeout(onQueueTimeout, this.queueMs, this, user) };
    w.timer.unref();
    this.waiting.push(w);
  }

  /** A waiting user gave up (client went away). */
  cancel(user: UpstreamUser): void {
    const i = this.waiting.findIndex((w) => w.user === user);
    if (i >= 0) clearTimeout(this.waiting.splice(i, 1)[0].timer);
  }

  /** The queue wait of `user` passed `queueMs`. */
  expire(user: UpstreamUser): void {
    const i = this.waiting.findIndex((w) => w.user === user);
    if (i < 0) return;
    this.waiting.splice(i, 1);
    this.refuse(user, "timeout");
  }

  private refuse(user: UpstreamUser, why: QueueRefusal): void {
    if (this.queueCounters !== null) this.queueCounters.queueRefused[why]++;
    const msg = why === "full" ? "member connection queue is full" : "waited too long for a member connection";
    user.failed(new UpstreamError(msg, why === "full" ? "QUEUE_FULL" : "QUEUE_TIMEOUT", true, true, false));
  }

  /** The next waiting request, its queue timer stopped. */
  private nextWaiter(): Waiter | undefined {
    const w = this.waiting.shift();
    if (w !== undefined) clearTimeout(w.timer);
    return w;
  }

  /**
   * Takes a connection slot for a connection opened outside the pool (an
   * upgrade, which never returns to it). An idle pooled connection is closed to
   * make room; false when every slot is busy.
   */
  reserve(): boolean {
    if (this.closed) return false;
    if (this.total < this.maxSockets) {
      this.total++;
      return true;
    }
    const idle = this.free.shift();
    if (idle === undefined) return false;
    idle.slotHandedOver = true;
    idle.destroy();
    return true;
  }

  /** Gives back a slot taken by reserve(). */
  unreserve(): void {
    this.total--;
    const next = this.closed ? undefined : this.nextWaiter();
    if (next !== undefined) this.connect().assign(next.user, next.head);
  }

  recycle(conn: Conn): void {
    if (this.closed) {
      conn.destroy();
      return;
    }
    const next = this.nextWaiter();
    if (next !== undefined) {
      conn.reused = true;
      conn.assign(next.user, next.head);
      return;
    }
    conn.setTimeout(this.idleMs);
    // An idle pool connection must not keep the process alive.
    conn.socket.unref();
    this.free.push(conn);
  }

  forget(conn: Conn): void {
    const i = this.free.indexOf(conn);
    if (i >= 0) this.free.splice(i, 1);
    // Its slot now belongs to an upgrade (reserve()).
    if (conn.slotHandedOver) return;
    this.total--;
    // A slot opened: start a connection for the next waiting request.
    const next = this.closed ? undefined : this.nextWaiter();
    if (next !== undefined) this.connect().assign(next.user, next.head);
  }

  private connect(): Conn {
    this.total++;
    const socket: TaggedSocket = net.connect({ host: this.host, port: this.port, noDelay: true });
    const conn = new Conn(this, socket);
    socket.setTimeout(this.connectMs);
    socket.on("data", onSocketData);
    socket.on("error", onSocketError);
    socket.on("close", onSocketClose);
    socket.on("timeout", onSocketTimeout);
    socket.on("drain", onSocketDrain);
    socket.once("connect", onSocketConnect);
    return conn;
  }

  /** A reachability check is running. */
  get checkRunning(): boolean {
    return this.checking;
  }

  /**
   * Starts a reachability check when a resendable request has waited STALL_MS
   * for its first answer byte and no check started since it was sent (or the
   * last one, which found the member there, is RECHECK_MS old). One check at a
   * time per member: a plain TCP connect, closed at once.
   */
  sweep(now: number): void {
    if (this.checking) return;
    const limit = now - STALL_MS;
    const recheck = now - this.checkStartedAt >= RECHECK_MS;
    let stalled = false;
    for (const c of this.busy) {
      if (c.waitingAndResendable() && c.sentAt <= limit && (recheck || c.sentAt > this.checkStartedAt)) {
        stalled = true;
        break;
      }
    }
    if (!stalled) return;
    this.checking = true;
    this.checkStartedAt = now;
    this.reachabilityChecks++;
    const signs = this.lifeSigns;
    checkAccepts(this.host, this.port, this.connectMs, (reachable, why) => {
      this.checking = false;
      if (reachable || this.closed) return;
      if (this.lifeSigns !== signs) return; // refused the check, but answered or accepted something else: busy, not gone
      this.unreachable(why);
    });
  }

  /**
   * The member accepted nothing and said nothing for a connect deadline: what
   * waits on it will not be answered. Every resendable request waiting fails,
   * including those sent while the check ran (a check of their own would
   * double their wait); the rest keep their own answer timeout.
   */
  private unreachable(why: string): void {
    for (const c of this.free.splice(0)) c.destroy();
    for (const c of [...this.busy]) {
      if (!c.waitingAndResendable()) continue;
      this.unreachableFailures++;
      c.fail(new UpstreamError(`member unreachable: ${why}`, "UNREACHABLE", true, false, c.reused));
    }
  }

  /** Closes idle connections now; busy ones close when their request ends. */
  destroy(): void {
    this.closed = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const c of this.free.splice(0)) c.destroy();
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.user.failed(new UpstreamError("pool closed", "POOL_CLOSED", true, true, false));
    }
  }
}

/**
 * Whether host:port accepts a TCP connection within `deadlineMs`. A refused
 * connection counts as reachable: the host answered, and connections it still
 * holds get their own reset if its server died.
 */
function checkAccepts(host: string, port: number, deadlineMs: number, done: (reachable: boolean, why: string) => void): void {
  const s = net.connect({ host, port });
  let settled = false;
  const finish = (reachable: boolean, why: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    s.destroy();
    done(reachable, why);
  };
  const timer = setTimeout(finish, deadlineMs, false, `no connection accepted within ${deadlineMs} ms`);
  timer.unref();
  s.once("connect", () => finish(true, "accepted"));
  s.once("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "ECONNREFUSED") finish(true, "refused");
    else finish(false, e.code ?? e.message);
  });
}
