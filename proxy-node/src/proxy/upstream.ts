// Keep-alive connection pool to one member, on plain net sockets with the
// response parser in parse.ts. One pool per member; at most `maxSockets`
// connections, upgraded ones included; requests beyond that wait in FIFO
// order, at most `maxQueue` of them and each at most `queueMs` (then 503, as
// HAProxy's `timeout queue`). Listeners are set once per socket, never per request.
import * as net from 'node:net';
import { ResponseParser, ResponseHead, ResponseSink, ParseError } from './parse';

/** What a pool connection reports to the request using it. */
export interface UpstreamUser {
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

const kConn = Symbol('proxy-node.conn');
type TaggedSocket = net.Socket & { [kConn]?: Conn };

export class Conn implements ResponseSink {
  user: UpstreamUser | null = null;
  readonly parser = new ResponseParser();
  connected = false;
  reused = false;
  gotResponseBytes = false;
  dead = false;
  /** Closed to make room for an upgrade, which took over its slot in the pool's count. */
  slotHandedOver = false;
  private err: Error | null = null;

  constructor(readonly pool: Pool, readonly socket: TaggedSocket) {
    socket[kConn] = this;
  }

  assign(user: UpstreamUser, headRequest: boolean): void {
    this.user = user;
    this.gotResponseBytes = false;
    this.parser.start(this, headRequest);
    user.attached(this);
    if (this.connected) {
      this.socket.ref();
      user.ready(this);
    }
  }

  /** Writes request bytes; false means wait for drained(). */
  write(data: string | Buffer): boolean {
    this.pool.counters.bytesOut += data.length;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
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
    if (u) u.complete(this);
  }

  /** Return to the pool (keepAlive) or close. Called by the user after complete(). */
  release(keepAlive: boolean): void {
    this.user = null;
    // Paused for a slow client whose response then completed: the next user must get data.
    if (this.socket.isPaused()) this.socket.resume();
    if (keepAlive && !this.dead && this.parser.idle) this.pool.recycle(this);
    else this.destroy();
  }

  destroy(): void {
    this.user = null;
    if (!this.dead) this.socket.destroy();
  }

  onData(d: Buffer): void {
    this.pool.counters.bytesIn += d.length;
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
      this.fail(new UpstreamError(`invalid response from member: ${e.message}`, 'BAD_RESPONSE', false, false, this.reused));
    }
    user.flush();
  }

  onError(err: Error): void {
    this.err = err;
  }

  onClose(): void {
    this.dead = true;
    this.pool.forget(this);
    if (this.user === null) return;
    if (this.parser.readsUntilClose && this.parser.closed()) return;
    const code = (this.err as NodeJS.ErrnoException | null)?.code ?? 'ECONNRESET';
    this.fail(new UpstreamError(this.err?.message ?? 'member closed the connection', code, !this.gotResponseBytes, !this.connected, this.reused));
  }

  onConnect(): void {
    this.connected = true;
    if (this.user) this.user.ready(this);
  }

  onTimeout(): void {
    if (this.user === null) {
      // Idle in the pool for too long: close before the member does.
      this.socket.destroy();
      return;
    }
    const phase = this.connected ? 'TIMEOUT' : 'CONNECT_TIMEOUT';
    this.fail(new UpstreamError(this.connected ? 'member timed out' : 'connect timeout', phase, !this.gotResponseBytes, !this.connected, this.reused));
  }

  private fail(err: UpstreamError): void {
    const u = this.user;
    this.user = null;
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
export type QueueRefusal = 'full' | 'timeout';

export interface QueueCounters {
  queueRefused: Record<QueueRefusal, number>;
}

export class Pool {
  private free: Conn[] = [];
  private waiting: Waiter[] = [];
  total = 0;
  private closed = false;

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
      this.refuse(user, 'full');
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
    this.refuse(user, 'timeout');
  }

  private refuse(user: UpstreamUser, why: QueueRefusal): void {
    if (this.queueCounters !== null) this.queueCounters.queueRefused[why]++;
    const msg = why === 'full' ? 'member connection queue is full' : 'waited too long for a member connection';
    user.failed(new UpstreamError(msg, why === 'full' ? 'QUEUE_FULL' : 'QUEUE_TIMEOUT', true, true, false));
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
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('timeout', onSocketTimeout);
    socket.on('drain', onSocketDrain);
    socket.once('connect', onSocketConnect);
    return conn;
  }

  /** Closes idle connections now; busy ones close when their request ends. */
  destroy(): void {
    this.closed = true;
    for (const c of this.free.splice(0)) c.destroy();
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.user.failed(new UpstreamError('pool closed', 'POOL_CLOSED', true, true, false));
    }
  }
}
