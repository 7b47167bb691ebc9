// The client-facing listener (ProxyServer): accepts connections, hands each
// to a ClientConn (client.ts), and sweeps their deadlines: one timer per
// server rather than one per socket. Also closes them all on stop. With TLS
// options it is a tls.Server whose decrypted sockets go to the same ClientConn.
import * as net from "node:net";
import * as tls from "node:tls";
import { ClientConn, ClientLimits, LINGER_MS, ServerHandlers } from "./client";

/** How long a connection that has sent nothing yet may stay open once the server stops accepting. */
export const FRESH_MS = 1000;

/** The client-facing listener: a net.Server plus the connections it has open. */
export class ProxyServer {
  readonly server: net.Server;
  private readonly conns = new Set<ClientConn>();
  private readonly tunnels = new Set<net.Socket>();
  /** Sockets the cluster primary handed over, until they close: with TLS, one still in its handshake has no ClientConn yet. */
  private readonly adopted = new Set<net.Socket>();
  private sweeper: NodeJS.Timeout | null = null;
  /** Resolves close() once the last connection is gone. */
  private drained: (() => void) | null = null;
  closing = false;

  constructor(
    public limits: ClientLimits,
    readonly handlers: ServerHandlers,
    secure?: tls.TlsOptions,
  ) {
    // allowHalfOpen: a client that shuts down its sending side still gets its answer.
    const accept = (socket: net.Socket): void => {
      this.conns.add(new ClientConn(socket, this));
    };
    if (secure) {
      const server = tls.createServer({ ...secure, allowHalfOpen: true, noDelay: true }, accept);
      // A client that fails its handshake (an old protocol, no shared cipher) only loses its own connection.
      server.on("tlsClientError", (_e, socket) => socket.destroy());
      this.server = server;
    } else this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, accept);
    this.startSweep();
  }

  /** A new certificate for new handshakes; connections already open keep theirs. */
  setSecureContext(options: tls.SecureContextOptions): void {
    if (this.server instanceof tls.Server) this.server.setSecureContext(options);
  }

  /** Timeouts can change on reload; the sweep follows the shortest. */
  setLimits(limits: ClientLimits): void {
    this.limits = limits;
    this.startSweep();
  }

  private startSweep(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    const l = this.limits;
    const shortest = Math.min(l.headersMs, l.keepAliveMs, l.requestMs > 0 ? l.requestMs : Infinity, LINGER_MS);
    const every = Math.max(25, Math.min(1000, Math.floor(shortest / 4)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns) if (c.deadline !== 0 && now >= c.deadline) c.timedOut();
  }

  forget(c: ClientConn): void {
    this.conns.delete(c);
    this.drainedYet();
  }

  private drainedYet(): void {
    if (this.conns.size === 0 && this.adopted.size === 0) this.drained?.();
  }

  /**
   * A connection the cluster primary accepted (cluster.ts): served as if this
   * server had accepted it. A socket passed between processes comes with node's
   * defaults, so the listener's options are set again here.
   */
  adopt(socket: net.Socket): void {
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    this.adopted.add(socket);
    socket.once("close", () => {
      this.adopted.delete(socket);
      this.drainedYet();
    });
    this.server.emit("connection", socket);
  }

  /** Upgraded sockets (WebSockets) are no longer ours to read, but still ours to close at stop. */
  adoptTunnel(socket: net.Socket): void {
    this.tunnels.add(socket);
    socket.once("close", () => this.tunnels.delete(socket));
  }

  /**
   * Stops accepting; resolves when every connection has closed. Requests in
   * flight finish with Connection: close. Counted here, not by the net.Server:
   * a cluster worker's connections were accepted by the primary.
   */
  close(): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    const drained = new Promise<void>((resolve) => (this.conns.size === 0 && this.adopted.size === 0 ? resolve() : (this.drained = resolve)));
    this.closeIdle();
    // A WebSocket has no end to wait for: its client reconnects to the next instance.
    for (const t of this.tunnels) t.destroy();
    return Promise.all([stopped, drained]).then(() => undefined);
  }

  /**
   * Closes connections with no request in progress. One that has not sent its
   * first request yet gets FRESH_MS: it was accepted a moment ago (during a
   * handover, just before the successor took the port), its client is sending,
   * and cutting it would fail a request no client retries.
   */
  closeIdle(): void {
    const now = Date.now();
    for (const c of this.conns) if (c.idle && (c.used || now - c.since >= FRESH_MS)) c.socket.destroy();
  }

  closeAll(): void {
    for (const c of this.conns) c.socket.destroy();
    for (const t of this.tunnels) t.destroy();
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  get connections(): number {
    return this.conns.size;
  }
}
