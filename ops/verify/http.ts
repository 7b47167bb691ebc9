import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

/** The certificate authority HTTPS requests trust (a local stack's own, as `curl --cacert`); undefined: the system's. */
let trusted: string | undefined;

/** Trust this CA (PEM) for the HTTPS requests that follow; undefined goes back to the system's. */
export function trustCa(pem: string | undefined): void {
  trusted = pem;
}

export function trustedCa(): string | undefined {
  return trusted;
}

/** One HTTP(S) request on a fresh connection, as a new browser tab would make it. */
export function request(url: string, opts: RequestOptions = {}): Promise<Reply> {
  const secure = new URL(url).protocol === "https:";
  const client = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, agent: false, ...(secure && trusted ? { ca: trusted } : {}) },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10000, () => req.destroy(new Error(`no answer within ${(opts.timeoutMs ?? 10000) / 1000} s: ${url}`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** What came back for bytes sent as they are. */
export interface RawAnswer {
  /** The status code of the first status line, if one came. */
  status?: number;
  /** The first line that came back, or what happened instead. */
  said: string;
}

/**
 * Sends `bytes` as they are on a fresh connection to the URL's host and port
 * and reads until the server closes or the time is up. node's HTTP client
 * cannot send what these checks send (absolute-form targets, CONNECT with a
 * request behind it, malformed heads), so they go through a plain socket.
 */
export function rawExchange(url: string, bytes: string, timeoutMs = 10000): Promise<RawAnswer> {
  const u = new URL(url);
  const secure = u.protocol === "https:";
  const port = Number(u.port || (secure ? 443 : 80));
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    let text = "";
    let failure: string | undefined;
    let timedOut = false;
    const send = (): void => void socket.end(Buffer.from(bytes, "latin1"));
    const socket: net.Socket = secure
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...(trusted ? { ca: trusted } : {}) }, send)
      : net.connect(port, host, send);
    socket.setTimeout(timeoutMs, () => {
      timedOut = true;
      socket.destroy();
    });
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    // A server that refuses may reset the connection after its answer: what came before counts.
    socket.on("error", (e: NodeJS.ErrnoException) => (failure = e.code ?? e.message));
    socket.on("close", () => {
      const first = text.split("\r\n", 1)[0];
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(first);
      if (m) resolve({ status: Number(m[1]), said: first });
      else if (first) resolve({ said: `not HTTP: ${JSON.stringify(first.slice(0, 60))}` });
      else if (timedOut) resolve({ said: `no answer within ${timeoutMs / 1000} s` });
      else resolve({ said: failure ? `closed without an answer (${failure})` : "closed without an answer" });
    });
  });
}
