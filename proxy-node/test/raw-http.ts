// Raw-socket HTTP for tests that check the proxy's client side on the wire: a
// client that writes exactly the bytes given and keeps everything it receives,
// the splitter that frames what it received into responses, and a member that
// speaks whatever the test writes on its sockets.
import { strict as assert } from "node:assert";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { until } from "./helpers";

export interface WireResponse {
  status: number;
  /** The head without the final empty line. */
  head: string;
  body: string;
}

export interface ParsedResponses {
  /** Complete responses, interim 1xx ones included, in the order received. */
  responses: WireResponse[];
  /** Whatever follows the last complete response: an incomplete one, or bytes that are not a response. */
  rest: string;
}

/** Value of a header in a response head (several joined with ", "), or undefined. */
export function header(r: WireResponse, name: string): string | undefined {
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (const line of r.head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0 && line.slice(0, i).trim().toLowerCase() === wanted) values.push(line.slice(i + 1).trim());
  }
  return values.length ? values.join(", ") : undefined;
}

/** Bytes as a quoted string for assertion messages, cut after 600 characters. */
export function show(s: string): string {
  return JSON.stringify(s.length > 600 ? `${s.slice(0, 600)}...(${s.length} chars)` : s);
}

/**
 * Frames a chunked body starting at `p`: the chunks, the last (zero) chunk and
 * any trailer fields after it. Returns the de-chunked body and the position
 * after it, or null while it is incomplete or not chunked framing.
 */
function chunkedBody(data: string, p: number): { body: string; end: number } | null {
  let body = "";
  for (;;) {
    const lineEnd = data.indexOf("\r\n", p);
    if (lineEnd < 0) return null;
    const size = parseInt(data.slice(p, lineEnd).split(";")[0], 16);
    if (Number.isNaN(size)) return null;
    p = lineEnd + 2;
    if (size === 0) {
      // No trailers: an empty line at once; else trailer fields up to an empty line.
      if (data.startsWith("\r\n", p)) return { body, end: p + 2 };
      const trailerEnd = data.indexOf("\r\n\r\n", p);
      return trailerEnd < 0 ? null : { body, end: trailerEnd + 4 };
    }
    if (p + size + 2 > data.length) return null;
    body += data.slice(p, p + size);
    p += size + 2;
  }
}

/**
 * Splits what a client received into complete responses (interim 1xx ones
 * included), framed by the rules a client follows: no body for HEAD, 1xx, 204
 * and 304; chunked (trailers allowed); Content-Length; otherwise up to the
 * close. `closed`: the connection has closed, so a body without length is
 * complete. `methods` are the methods of the requests sent, in order (for HEAD).
 */
export function parseResponses(data: string, closed: boolean, methods: readonly string[]): ParsedResponses {
  const responses: WireResponse[] = [];
  let pos = 0;
  let finals = 0;
  while (pos < data.length) {
    const headEnd = data.indexOf("\r\n\r\n", pos);
    if (headEnd < 0) break;
    const head = data.slice(pos, headEnd);
    const m = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?\r\n/.exec(`${head}\r\n`);
    if (!m) break;
    const status = Number(m[1]);
    if (status < 100) break;
    const r: WireResponse = { status, head, body: "" };
    let p = headEnd + 4;
    if (status < 200) {
      responses.push(r);
      pos = p;
      continue;
    }
    const te = header(r, "transfer-encoding");
    const cl = header(r, "content-length");
    if (methods[finals] === "HEAD" || status === 204 || status === 304) {
      // no body
    } else if (te !== undefined && /\bchunked\s*$/i.test(te)) {
      const chunked = chunkedBody(data, p);
      if (chunked === null) break;
      r.body = chunked.body;
      p = chunked.end;
    } else if (cl !== undefined) {
      // Not one plain length (e.g. two different ones joined): not framed, left in `rest`.
      if (!/^\d+$/.test(cl)) break;
      const n = Number(cl);
      if (p + n > data.length) break;
      r.body = data.slice(p, p + n);
      p += n;
    } else {
      if (!closed) break;
      r.body = data.slice(p);
      p = data.length;
    }
    responses.push(r);
    finals++;
    pos = p;
  }
  return { responses, rest: data.slice(pos) };
}

const liveClients = new Set<RawClient>();

/** Destroys every RawClient still open (for afterEach). */
export function destroyRawClients(): void {
  for (const c of liveClients) c.destroy();
  liveClients.clear();
}

/** A client on a raw socket: writes exactly the bytes given and keeps everything it receives. */
export class RawClient {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  /** Bytes received so far. */
  received = 0;
  closed = false;
  /** The socket's error code, if it ended with one (ECONNRESET: the proxy reset it). */
  error: string | null = null;
  /** When the server's FIN (end of its data) arrived, relative to `received`; -1 before. */
  endedAfter = -1;
  /** Methods of the requests sent so far, for framing HEAD answers. */
  readonly methods: string[] = [];

  constructor(port: number, opts: { allowHalfOpen?: boolean } = {}) {
    this.socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: opts.allowHalfOpen ?? false });
    this.socket.setNoDelay(true);
    this.socket.on("data", (c: Buffer) => {
      this.chunks.push(c);
      this.received += c.length;
    });
    this.socket.on("end", () => (this.endedAfter = this.received));
    this.socket.on("error", (e: NodeJS.ErrnoException) => (this.error ??= e.code ?? e.message));
    this.socket.on("close", () => {
      this.closed = true;
      liveClients.delete(this);
    });
    liveClients.add(this);
  }

  /** Resolves once the connection is established. */
  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.socket.connecting) return resolve();
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
  }

  /** Everything received so far, one character a byte. */
  get text(): string {
    return Buffer.concat(this.chunks).toString("latin1");
  }

  /**
   * Sends bytes (a string one byte a character); the methods of the request
   * lines in a string are noted for framing, also those right after a body.
   */
  send(data: string | Buffer): Promise<void> {
    if (typeof data === "string") for (const m of data.matchAll(/(?:^|\r\n\r\n|[a-z0-9])([A-Z]+) \S+ HTTP\/1\.[01]\r\n/g)) this.methods.push(m[1]);
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      if (typeof data === "string") this.socket.write(data, "latin1", () => resolve());
      else this.socket.write(data, () => resolve());
    });
  }

  parsed(): ParsedResponses {
    return parseResponses(this.text, this.closed, this.methods);
  }

  /** Final (non-1xx) responses received so far. */
  finals(): WireResponse[] {
    return this.parsed().responses.filter((r) => r.status >= 200);
  }

  /** Waits for `n` complete final responses; fails with what was received if the connection closes first or the deadline passes. */
  async responses(n: number, deadlineMs = 3000): Promise<WireResponse[]> {
    await until(() => this.finals().length >= n || this.closed, `${n} response(s)`, deadlineMs).catch(() => undefined);
    const got = this.finals();
    assert.ok(
      got.length >= n,
      `expected ${n} complete response(s), got ${got.length}${this.closed ? ` and the connection closed (${this.error ?? "FIN"})` : ""}: ${show(this.text)}`,
    );
    return got;
  }

  /** True once the proxy closed the connection, false if it is still open after `deadlineMs`. */
  async waitClosed(deadlineMs = 3000): Promise<boolean> {
    await until(() => this.closed, "close", deadlineMs).catch(() => undefined);
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface RawMember {
  url: string;
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Destroys its connections and stops listening; safe to call more than once. */
  close(): Promise<void>;
}

const liveMembers = new Set<RawMember>();

/** Closes every raw member still listening (for afterEach). */
export async function closeRawMembers(): Promise<void> {
  const list = [...liveMembers];
  liveMembers.clear();
  await Promise.all(list.map((m) => m.close()));
}

/** A member on a raw socket: `onConn` gets every connection and writes what the test wants. */
export async function rawMember(onConn: (sock: net.Socket) => void): Promise<RawMember> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((c) => {
    accepted++;
    sockets.add(c);
    c.on("close", () => sockets.delete(c));
    c.on("error", () => undefined);
    onConn(c);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  const member: RawMember = {
    url: `http://127.0.0.1:${port}`,
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    close: () => {
      liveMembers.delete(member);
      closing ??= new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      });
      return closing;
    },
  };
  liveMembers.add(member);
  return member;
}
