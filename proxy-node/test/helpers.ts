// Shared fixtures: member servers and proxies on 127.0.0.1 with ephemeral
// ports, all closed after each test.
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { validateConfig, Config } from "../src/config";
import { ProxyNode } from "../src/app";
import { silentLogger, Logger } from "../src/log";

const closers: Array<() => Promise<void>> = [];

export async function closeAll(): Promise<void> {
  const list = closers.splice(0);
  await Promise.all(list.reverse().map((c) => c().catch(() => undefined)));
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface MemberServer {
  route: string;
  port: number;
  url: string;
  server: http.Server;
  seen: SeenRequest[];
  close(): Promise<void>;
  /** Kill: destroy every open connection at once, like a crashed process. */
  kill(): Promise<void>;
}

export type MemberHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/** A web server that answers with its route and stamps BALANCEID like the cluster's web servers. */
export async function startMember(route: string, handler?: MemberHandler, stamp = true): Promise<MemberServer> {
  const seen: SeenRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, rawHeaders: req.rawHeaders, body });
      if (handler) return handler(req, res, body);
      const headers: Record<string, string> = { "Content-Type": "text/plain" };
      if (stamp) headers["Set-Cookie"] = `BALANCEID=balancer.${route}; path=/`;
      res.writeHead(200, headers);
      res.end(route);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
  };
  closers.push(close);
  return {
    route,
    port,
    url: `http://127.0.0.1:${port}`,
    server,
    seen,
    close,
    kill: async () => {
      for (const s of sockets) s.destroy();
      await close();
    },
  };
}

export function baseConfig(
  members: Array<{ url: string; route: string; [k: string]: unknown }>,
  extra: Record<string, unknown> = {},
  balancer: Record<string, unknown> = {},
): Config {
  return validateConfig({
    listen: { host: "127.0.0.1", port: 0 },
    publicUrl: "http://public.example:8080",
    log: { requests: false },
    ...extra,
    balancer: { name: "drupal", members, ...balancer },
  });
}

export async function startProxy(cfg: Config, logger: Logger = silentLogger): Promise<ProxyNode> {
  const app = new ProxyNode(cfg, logger);
  await app.start();
  closers.push(() => app.stop(200));
  return app;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export function request(port: number, opts: http.RequestOptions & { body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const { body, ...o } = opts;
    const req = http.request({ host: "127.0.0.1", port, agent: false, ...o }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Sends raw bytes and returns everything the server sent until it closed (or `waitMs` passed). */
export function rawExchange(port: number, data: string, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const t = setTimeout(() => s.destroy(), waitMs);
    s.on("data", (c) => chunks.push(c));
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
    s.write(data);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `cond` holds; generous deadline, never a speed assertion. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A loopback port nothing listens on right now, for servers that cannot be told to use port 0. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}
