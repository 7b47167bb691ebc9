// The client-facing listener (ProxyServer): accepts connections, hands each
// to a ClientConn (client.ts), and sweeps their deadlines: one timer per
// server rather than one per socket. Also closes them all on stop. With TLS
// options it is a tls.Server whose decrypted sockets go to the same ClientConn.
import * as net from "node:net";
import * as tls from "node:tls";
import { ClientConn, ClientLimits, LINGER_MS, ServerHandlers } from "./client";

/** The client-facing listener: a net.Server plus the connections it has open. */
export class ProxyServer {
  readonly server: net.Server;
  private readonly conns = new Set<ClientConn>();
  private readonly tunnels = new Set<net.Socket>();
  private sweeper: NodeJS.Timeout | null = null;
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
  }

  /** Upgraded sockets (WebSockets) are no longer ours to read, but still ours to close at stop. */
  adoptTunnel(socket: net.Socket): void {
    this.tunnels.add(socket);
    socket.once("close", () => this.tunnels.delete(socket));
  }

  /** Stops accepting; resolves when every connection has closed. Requests in flight finish with Connection: close. */
  close(): Promise<void> {
    this.closing = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.closeIdle();
    // A WebSocket has no end to wait for: its client reconnects to the next instance.
    for (const t of this.tunnels) t.destroy();
    return done;
  }

  closeIdle(): void {
    for (const c of this.conns) if (c.idle) c.socket.destroy();
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
