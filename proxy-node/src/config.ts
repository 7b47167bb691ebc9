// Config file contract shared with the cluster program: ConfigFile is what the
// file holds, and the cluster program builds one (infra/payload/proxy-node-config.ts)
// from the same model as the Apache config, then runs validateConfig on it before
// anything ships. Validation reports exactly one error, naming the key, so a bad
// render is obvious at render time, and a hand-edited file in the journal.
import { readFileSync } from "node:fs";
import * as os from "node:os";
import { parseCidr, Cidr } from "./cidr";

export type MemberStatus = "enabled" | "disabled" | "draining" | "standby" | "stopped";
export type LbMethod = "byrequests" | "bybusyness" | "bytraffic";
export type Mode = "serve" | "agent";

export interface MemberConfig {
  url: string;
  host: string;
  port: number;
  route: string;
  lbfactor: number;
  retry: number;
  status: MemberStatus;
  maxSockets: number;
  /** Requests that may wait for one of the member's connections; more get 503. */
  maxQueue: number;
}

export interface SetCookieConfig {
  name: string;
  valuePrefix: string;
  path: string;
  domain: string;
}

export interface HealthCheckConfig {
  path: string;
  intervalMs: number;
  expect: number;
  rise: number;
  fall: number;
  timeoutMs: number;
}

export interface BalancerConfig {
  name: string;
  lbmethod: LbMethod;
  stickysession: string;
  stickysessionsep: string;
  scolonpathdelim: boolean;
  nofailover: boolean;
  trustCookieOnly: boolean;
  preserveHost: boolean;
  setCookie: SetCookieConfig | null;
  members: MemberConfig[];
  healthCheck: HealthCheckConfig | null;
  maxRetries: number;
}

export interface ManagerConfig {
  host: string;
  port: number;
  allow: Cidr[];
  allowText: string[];
  token: string;
}

/** A second balancer sharing the virtual address (issue 12): its proxy-node manager, reached with the same token. */
export interface PeerConfig {
  name: string;
  managerUrl: string;
}

export interface RedundancyConfig {
  /** This balancer's host name, sent to peers in X-Proxy-Node-Peer and shown on the page. */
  self: string;
  /** IPv4 address keepalived moves between the balancers. */
  virtualAddress: string;
  peers: PeerConfig[];
}

/** The HTTPS listener (serve mode) and the manager's HTTPS (either mode); see tls.ts. */
export interface TlsConfig {
  host: string;
  port: number;
  /** Paths to PEM files, read at start and on every SIGHUP. */
  cert: string;
  key: string;
  minVersion: TlsVersion;
  ciphers: string;
  /** The origin clients reach the HTTPS listener at: redirects, Location rewriting. */
  publicUrl: string;
  /** The plain listener answers 301 to publicUrl, except to redirectExempt. */
  redirect: boolean;
  redirectExempt: Cidr[];
  redirectExemptText: string[];
  /** Strict-Transport-Security max-age on HTTPS answers; 0: no header. */
  hstsMaxAge: number;
}

export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/**
 * Mozilla's "intermediate" TLS 1.2 suites (server-side TLS guidelines, v5.7);
 * TLS 1.3 suites are OpenSSL's defaults, all of them strong.
 */
export const INTERMEDIATE_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-CHACHA20-POLY1305",
].join(":");

export interface Config {
  mode: Mode;
  listen: { host: string; port: number };
  publicUrl: string;
  tls: TlsConfig | null;
  manager: ManagerConfig | null;
  balancer: BalancerConfig;
  apache: { managerUrl: string; balancer: string } | null;
  /** Peers whose X-Forwarded-* and Forwarded headers are passed on; everyone else's are dropped. */
  trustForwardedFrom: Cidr[];
  trustForwardedFromText: string[];
  timeouts: {
    connectMs: number;
    queueMs: number;
    headersMs: number;
    idleMs: number;
    clientHeadersMs: number;
    clientRequestMs: number;
    keepAliveMs: number;
    memberKeepAliveMs: number;
    shutdownMs: number;
  };
  limits: { maxHeaderSize: number; maxHeadersCount: number };
  via: boolean;
  /** Serve mode: node:cluster workers; 1 = one process. A config's "auto" is resolved at load. */
  workers: number;
  /** withholdPaths: request paths whose rest is secret (a cron key in the URL): logged as the prefix and "(withheld)". */
  log: { requests: boolean; withholdPaths: string[] };
  /** Null: one balancer, nothing to carry to anyone. */
  redundancy: RedundancyConfig | null;
}

// ---- the file --------------------------------------------------------------------
// What a config file may hold, as JSON. Every key the validator reads is here and
// every key here is read (the key lists below are built from these types), so a
// program that writes a ConfigFile writes what proxy-node reads. Omitted keys take
// the defaults validateConfig documents.

export interface MemberFile {
  url: string;
  route: string;
  lbfactor?: number;
  retry?: number;
  status?: MemberStatus;
  maxSockets?: number;
  maxQueue?: number;
}

export interface SetCookieFile {
  name?: string;
  valuePrefix?: string;
  path?: string;
  domain?: string;
}

export interface HealthCheckFile {
  path?: string;
  intervalMs?: number;
  expect?: number;
  rise?: number;
  fall?: number;
  timeoutMs?: number;
}

export interface BalancerFile {
  name?: string;
  lbmethod?: LbMethod;
  stickysession?: string;
  stickysessionsep?: string;
  scolonpathdelim?: boolean;
  nofailover?: boolean;
  trustCookieOnly?: boolean;
  preserveHost?: boolean;
  setCookie?: SetCookieFile | null;
  members: MemberFile[];
  healthCheck?: HealthCheckFile | null;
  maxRetries?: number;
}

export interface ManagerFile {
  host?: string;
  port: number;
  /** CIDR ranges, e.g. "127.0.0.1/32". */
  allow: string[];
  token: string;
}

export interface ApacheFile {
  managerUrl: string;
  balancer?: string;
}

export interface PeerFile {
  name: string;
  /** The peer's proxy-node manager, http://host:port. */
  managerUrl: string;
}

export interface RedundancyFile {
  self: string;
  virtualAddress: string;
  peers: PeerFile[];
}

export interface TlsFile {
  host?: string;
  port: number;
  cert: string;
  key: string;
  minVersion?: TlsVersion;
  ciphers?: string;
  publicUrl?: string;
  redirect?: boolean;
  /** CIDR ranges that keep plain HTTP with redirect on (the balancer's own cron and agent: loopback). */
  redirectExempt?: string[];
  hstsMaxAge?: number;
}

export interface ConfigFile {
  mode?: Mode;
  listen?: { host?: string; port?: number };
  publicUrl?: string;
  tls?: TlsFile | null;
  manager?: ManagerFile | null;
  balancer: BalancerFile;
  /** Read in agent mode only (required there); serve mode ignores it. */
  apache?: ApacheFile | null;
  trustForwardedFrom?: string[] | null;
  timeouts?: Partial<Config["timeouts"]>;
  limits?: Partial<Config["limits"]>;
  via?: boolean;
  workers?: number | "auto";
  log?: { requests?: boolean; withholdPaths?: string[] };
  /** Two balancers behind one virtual address; needs `manager`. */
  redundancy?: RedundancyFile | null;
}

/** A type's keys as a list, in the order given; the compiler refuses a missing or an extra one. */
function keysOf<T>(keys: { [K in keyof Required<T>]: true }): readonly string[] {
  return Object.keys(keys);
}

const ROOT_KEYS = keysOf<ConfigFile>({
  mode: true,
  listen: true,
  publicUrl: true,
  tls: true,
  manager: true,
  balancer: true,
  apache: true,
  trustForwardedFrom: true,
  timeouts: true,
  limits: true,
  via: true,
  workers: true,
  log: true,
  redundancy: true,
});
const REDUNDANCY_KEYS = keysOf<RedundancyFile>({ self: true, virtualAddress: true, peers: true });
const PEER_KEYS = keysOf<PeerFile>({ name: true, managerUrl: true });
const LISTEN_KEYS = keysOf<NonNullable<ConfigFile["listen"]>>({ host: true, port: true });
const MEMBER_KEYS = keysOf<MemberFile>({ url: true, route: true, lbfactor: true, retry: true, status: true, maxSockets: true, maxQueue: true });
const HEALTH_KEYS = keysOf<HealthCheckFile>({ path: true, intervalMs: true, expect: true, rise: true, fall: true, timeoutMs: true });
const SET_COOKIE_KEYS = keysOf<SetCookieFile>({ name: true, valuePrefix: true, path: true, domain: true });
const MANAGER_KEYS = keysOf<ManagerFile>({ host: true, port: true, allow: true, token: true });
const BALANCER_KEYS = keysOf<BalancerFile>({
  name: true,
  lbmethod: true,
  stickysession: true,
  stickysessionsep: true,
  scolonpathdelim: true,
  nofailover: true,
  trustCookieOnly: true,
  preserveHost: true,
  setCookie: true,
  members: true,
  healthCheck: true,
  maxRetries: true,
});
const TLS_KEYS = keysOf<TlsFile>({
  host: true,
  port: true,
  cert: true,
  key: true,
  minVersion: true,
  ciphers: true,
  publicUrl: true,
  redirect: true,
  redirectExempt: true,
  hstsMaxAge: true,
});
const APACHE_KEYS = keysOf<ApacheFile>({ managerUrl: true, balancer: true });
const TIMEOUT_KEYS = keysOf<Config["timeouts"]>({
  connectMs: true,
  queueMs: true,
  headersMs: true,
  idleMs: true,
  clientHeadersMs: true,
  clientRequestMs: true,
  keepAliveMs: true,
  memberKeepAliveMs: true,
  shutdownMs: true,
});
const LIMIT_KEYS = keysOf<Config["limits"]>({ maxHeaderSize: true, maxHeadersCount: true });
const LOG_KEYS = keysOf<NonNullable<ConfigFile["log"]>>({ requests: true, withholdPaths: true });

export class ConfigError extends Error {
  constructor(
    /** The key as the file writes it: `balancer.members[1].route`, `workers`, `(root)`. */
    readonly key: string,
    readonly problem: string,
  ) {
    super(`config: ${key}: ${problem}`);
    this.name = "ConfigError";
  }
}

type Obj = Record<string, unknown>;

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function obj(v: unknown, key: string): Obj {
  if (!isObj(v)) throw new ConfigError(key, `expected an object, got ${show(v)}`);
  return v;
}

function optObj(parent: Obj, name: string, key: string): Obj {
  const v = parent[name];
  if (v === undefined) return {};
  return obj(v, key);
}

function noUnknown(o: Obj, allowed: readonly string[], key: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ConfigError(key ? `${key}.${k}` : k, `unknown key (allowed: ${allowed.join(", ")})`);
  }
}

function str(o: Obj, name: string, key: string, def?: string): string {
  const v = o[name];
  if (v === undefined && def !== undefined) return def;
  if (typeof v !== "string") throw new ConfigError(`${key}.${name}`.replace(/^\./, ""), `expected a string, got ${show(v)}`);
  return v;
}

function bool(o: Obj, name: string, key: string, def: boolean): boolean {
  const v = o[name];
  if (v === undefined) return def;
  if (typeof v !== "boolean") throw new ConfigError(`${key}.${name}`.replace(/^\./, ""), `expected true or false, got ${show(v)}`);
  return v;
}

function int(o: Obj, name: string, key: string, def: number | undefined, min: number, max: number): number {
  const v = o[name];
  if (v === undefined && def !== undefined) return def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${key}.${name}`.replace(/^\./, ""), `expected an integer from ${min} to ${max}, got ${show(v)}`);
  }
  return v;
}

function oneOf<T extends string>(o: Obj, name: string, key: string, def: T, values: readonly T[]): T {
  const v = o[name];
  if (v === undefined) return def;
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
    throw new ConfigError(`${key}.${name}`.replace(/^\./, ""), `expected one of ${values.join(", ")}, got ${show(v)}`);
  }
  return v as T;
}

export const MAX_WORKERS = 64;

/** os.availableParallelism came with node 18.14; bookworm's first nodejs was 18.13. */
function cores(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}

/** What `"workers": "auto"` becomes: the cores this process may use, 1 to MAX_WORKERS. */
export function autoWorkers(parallelism: number = cores()): number {
  if (!Number.isFinite(parallelism) || parallelism < 1) return 1;
  return Math.min(Math.floor(parallelism), MAX_WORKERS);
}

function workers(v: unknown): number {
  if (v === undefined) return 1;
  if (v === "auto") return autoWorkers();
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_WORKERS) {
    throw new ConfigError("workers", `expected an integer from 1 to ${MAX_WORKERS} or "auto", got ${show(v)}`);
  }
  return v;
}

const ORIGIN = /^http:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})\/?$/;
const ROUTE = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function parseOrigin(v: unknown, key: string): { host: string; port: number } {
  const m = typeof v === "string" ? ORIGIN.exec(v) : null;
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new ConfigError(key, `expected http://host:port, got ${show(v)}`);
  const host = m[1].startsWith("[") ? m[1].slice(1, -1) : m[1];
  return { host, port };
}

function member(v: unknown, key: string, sep: string): MemberConfig {
  const o = obj(v, key);
  noUnknown(o, MEMBER_KEYS, key);
  const { host, port } = parseOrigin(o.url, `${key}.url`);
  const route = str(o, "route", key);
  if (!ROUTE.test(route)) throw new ConfigError(`${key}.route`, `expected letters, digits, '.', '_', '~' or '-', got ${show(route)}`);
  // Apache takes everything after the FIRST separator as the route, so a route
  // containing the separator could never be matched by a sticky cookie.
  if (sep && route.includes(sep)) {
    throw new ConfigError(`${key}.route`, `must not contain the stickysessionsep ${show(sep)} (it could never match), got ${show(route)}`);
  }
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    host,
    port,
    route,
    lbfactor: int(o, "lbfactor", key, 1, 1, 100),
    retry: int(o, "retry", key, 60, 0, 86400),
    status: oneOf<MemberStatus>(o, "status", key, "enabled", ["enabled", "disabled", "draining", "standby", "stopped"]),
    maxSockets: int(o, "maxSockets", key, 256, 1, 65536),
    maxQueue: int(o, "maxQueue", key, 1024, 0, 1_000_000),
  };
}

function healthCheck(v: unknown, key: string): HealthCheckConfig | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, key);
  noUnknown(o, HEALTH_KEYS, key);
  const path = str(o, "path", key, "/");
  if (!path.startsWith("/") || /[\s\x00-\x1f\x7f]/.test(path)) throw new ConfigError(`${key}.path`, `expected a path starting with /, got ${show(path)}`);
  return {
    path,
    intervalMs: int(o, "intervalMs", key, 2000, 100, 3_600_000),
    expect: int(o, "expect", key, 200, 100, 599),
    rise: int(o, "rise", key, 2, 1, 100),
    fall: int(o, "fall", key, 2, 1, 100),
    timeoutMs: int(o, "timeoutMs", key, 1000, 10, 600_000),
  };
}

function setCookie(v: unknown, key: string, stickyCookie: string, sep: string): SetCookieConfig | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, key);
  noUnknown(o, SET_COOKIE_KEYS, key);
  const name = str(o, "name", key, stickyCookie);
  if (!TOKEN.test(name)) throw new ConfigError(`${key}.name`, `expected a cookie name, got ${show(name)}`);
  const valuePrefix = str(o, "valuePrefix", key, `balancer${sep}`);
  if (/[\s;,"\\\x00-\x1f\x7f]/.test(valuePrefix)) throw new ConfigError(`${key}.valuePrefix`, `expected cookie-safe characters, got ${show(valuePrefix)}`);
  const path = str(o, "path", key, "/");
  if (/[;\x00-\x1f\x7f]/.test(path)) throw new ConfigError(`${key}.path`, `expected a cookie path, got ${show(path)}`);
  const domain = str(o, "domain", key, "");
  if (domain !== "" && !/^[A-Za-z0-9.-]+$/.test(domain)) throw new ConfigError(`${key}.domain`, `expected a domain name, got ${show(domain)}`);
  return { name, valuePrefix, path, domain };
}

function cidrList(raw: readonly unknown[], key: string): { list: Cidr[]; text: string[] } {
  const list: Cidr[] = [];
  const text: string[] = [];
  raw.forEach((c, i) => {
    const parsed = typeof c === "string" ? parseCidr(c) : null;
    if (!parsed) throw new ConfigError(`${key}[${i}]`, `expected a CIDR range like 127.0.0.0/8, got ${show(c)}`);
    list.push(parsed);
    text.push(c as string);
  });
  return { list, text };
}

/** Path prefixes such as "/cron/": absolute, printable, no query, at most 32 of them. */
function withholdPaths(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > 32) throw new ConfigError("log.withholdPaths", `expected a list of at most 32 path prefixes, got ${show(v)}`);
  return v.map((p: unknown, i) => {
    if (typeof p !== "string" || !/^\/[\x21-\x7e]{0,255}$/.test(p) || p.includes("?")) {
      throw new ConfigError(`log.withholdPaths[${i}]`, `expected a path prefix starting with / (printable, no spaces or ?), got ${show(p)}`);
    }
    return p;
  });
}

function tlsConfig(v: unknown, listen: { host: string; port: number }, publicUrl: string): TlsConfig | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, "tls");
  noUnknown(o, TLS_KEYS, "tls");
  const port = int(o, "port", "tls", undefined, 0, 65535);
  if (port !== 0 && port === listen.port) throw new ConfigError("tls.port", `must differ from listen.port (${listen.port})`);
  const file = (name: string): string => {
    const p = str(o, name, "tls");
    if (!p.startsWith("/") && !p.startsWith(".")) throw new ConfigError(`tls.${name}`, `expected a path to a PEM file, got ${show(p)}`);
    return p;
  };
  const ciphers = str(o, "ciphers", "tls", INTERMEDIATE_CIPHERS);
  if (!/^[A-Za-z0-9_+:!@=.-]+$/.test(ciphers)) throw new ConfigError("tls.ciphers", `expected an OpenSSL cipher list, got ${show(ciphers)}`);
  const host = new URL(publicUrl).hostname;
  let url = `https://${host}${port === 443 ? "" : `:${port}`}`;
  if (o.publicUrl !== undefined) {
    const u = o.publicUrl;
    if (typeof u !== "string" || !/^https:\/\/[^\s/?#]+\/?$/.test(u))
      throw new ConfigError("tls.publicUrl", `expected an origin like https://host:port, got ${show(u)}`);
    url = u.replace(/\/$/, "");
  }
  const exempt = o.redirectExempt;
  if (exempt !== undefined && !Array.isArray(exempt)) throw new ConfigError("tls.redirectExempt", `expected a list of CIDR ranges, got ${show(exempt)}`);
  const { list, text } = cidrList(exempt ?? [], "tls.redirectExempt");
  return {
    host: str(o, "host", "tls", listen.host),
    port,
    cert: file("cert"),
    key: file("key"),
    minVersion: oneOf<TlsVersion>(o, "minVersion", "tls", "TLSv1.2", ["TLSv1.2", "TLSv1.3"]),
    ciphers,
    publicUrl: url,
    redirect: bool(o, "redirect", "tls", true),
    redirectExempt: list,
    redirectExemptText: text,
    hstsMaxAge: int(o, "hstsMaxAge", "tls", 0, 0, 100_000_000),
  };
}

function trustForwardedFrom(v: unknown): { list: Cidr[]; text: string[] } {
  if (v === undefined || v === null) return { list: [], text: [] };
  if (!Array.isArray(v)) throw new ConfigError("trustForwardedFrom", `expected a list of CIDR ranges, got ${show(v)}`);
  return cidrList(v, "trustForwardedFrom");
}

function manager(v: unknown, key: string): ManagerConfig | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, key);
  noUnknown(o, MANAGER_KEYS, key);
  const allowRaw = o.allow;
  if (!Array.isArray(allowRaw) || allowRaw.length === 0) {
    throw new ConfigError(`${key}.allow`, `expected a non-empty list of CIDR ranges, got ${show(allowRaw)}`);
  }
  const { list: allow, text: allowText } = cidrList(allowRaw, `${key}.allow`);
  const token = str(o, "token", key);
  if (token.length < 8 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(`${key}.token`, "expected at least 8 printable characters without spaces");
  }
  return {
    host: str(o, "host", key, "127.0.0.1"),
    port: int(o, "port", key, undefined, 0, 65535),
    allow,
    allowText,
    token,
  };
}

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function redundancy(v: unknown, key: string): RedundancyConfig | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, key);
  noUnknown(o, REDUNDANCY_KEYS, key);
  const self = str(o, "self", key);
  if (!HOST_NAME.test(self)) throw new ConfigError(`${key}.self`, `expected a host name, got ${show(self)}`);
  const virtualAddress = str(o, "virtualAddress", key);
  if (!IPV4.test(virtualAddress)) throw new ConfigError(`${key}.virtualAddress`, `expected an IPv4 address like 172.30.74.4, got ${show(virtualAddress)}`);
  const raw = o.peers;
  if (!Array.isArray(raw) || raw.length === 0) throw new ConfigError(`${key}.peers`, `expected a non-empty list, got ${show(raw)}`);
  const names = new Set<string>([self]);
  const peers = raw.map((p, i): PeerConfig => {
    const pk = `${key}.peers[${i}]`;
    const po = obj(p, pk);
    noUnknown(po, PEER_KEYS, pk);
    const name = str(po, "name", pk);
    if (!HOST_NAME.test(name)) throw new ConfigError(`${pk}.name`, `expected a host name, got ${show(name)}`);
    // A change forwarded to itself would be applied twice and the answer would name this balancer as its own peer.
    if (names.has(name)) throw new ConfigError(`${pk}.name`, `${show(name)} is already ${name === self ? "self" : "another peer"}`);
    names.add(name);
    const { host, port } = parseOrigin(po.managerUrl, `${pk}.managerUrl`);
    return { name, managerUrl: `http://${host.includes(":") ? `[${host}]` : host}:${port}` };
  });
  return { self, virtualAddress, peers };
}

/** Checks a config file's content (a parsed JSON value, or a ConfigFile built by a program) and fills in the defaults. */
export function validateConfig(raw: unknown): Config {
  const root = obj(raw, "(root)");
  noUnknown(root, ROOT_KEYS, "");
  const mode = oneOf<Mode>(root, "mode", "", "serve", ["serve", "agent"]);

  const listenO = optObj(root, "listen", "listen");
  noUnknown(listenO, LISTEN_KEYS, "listen");
  const listen = { host: str(listenO, "host", "listen", "0.0.0.0"), port: int(listenO, "port", "listen", 80, 0, 65535) };

  let publicUrl = `http://${listen.host === "0.0.0.0" ? "127.0.0.1" : listen.host}:${listen.port}`;
  if (root.publicUrl !== undefined) {
    const v = root.publicUrl;
    if (typeof v !== "string" || !/^https?:\/\/[^\s/?#]+\/?$/.test(v)) {
      throw new ConfigError("publicUrl", `expected an origin like http://host:port, got ${show(v)}`);
    }
    publicUrl = v.replace(/\/$/, "");
  }

  const b = obj(root.balancer, "balancer");
  noUnknown(b, BALANCER_KEYS, "balancer");
  const stickysession = str(b, "stickysession", "balancer", "BALANCEID");
  const parts = stickysession.split("|");
  if (parts.length > 2 || parts.some((p) => !TOKEN.test(p))) {
    throw new ConfigError("balancer.stickysession", `expected NAME or COOKIENAME|pathname, got ${show(stickysession)}`);
  }
  const sep = str(b, "stickysessionsep", "balancer", ".");
  if (sep.length > 1) throw new ConfigError("balancer.stickysessionsep", `expected one character (or "" for none), got ${show(sep)}`);
  const membersRaw = b.members;
  if (!Array.isArray(membersRaw) || membersRaw.length === 0) {
    throw new ConfigError("balancer.members", `expected a non-empty list, got ${show(membersRaw)}`);
  }
  const members = membersRaw.map((m, i) => member(m, `balancer.members[${i}]`, sep));
  const seen = new Map<string, number>();
  members.forEach((m, i) => {
    const prev = seen.get(m.route);
    if (prev !== undefined) throw new ConfigError(`balancer.members[${i}].route`, `duplicate of balancer.members[${prev}].route ${show(m.route)}`);
    seen.set(m.route, i);
  });
  const balancer: BalancerConfig = {
    name: str(b, "name", "balancer", "drupal"),
    lbmethod: oneOf<LbMethod>(b, "lbmethod", "balancer", "byrequests", ["byrequests", "bybusyness", "bytraffic"]),
    stickysession,
    stickysessionsep: sep,
    scolonpathdelim: bool(b, "scolonpathdelim", "balancer", true),
    nofailover: bool(b, "nofailover", "balancer", false),
    trustCookieOnly: bool(b, "trustCookieOnly", "balancer", false),
    preserveHost: bool(b, "preserveHost", "balancer", false),
    setCookie: setCookie(b.setCookie, "balancer.setCookie", parts[0], sep),
    members,
    healthCheck: healthCheck(b.healthCheck, "balancer.healthCheck"),
    maxRetries: int(b, "maxRetries", "balancer", Math.min(members.length - 1, 3), 0, 100),
  };

  let apache: Config["apache"] = null;
  if (root.apache !== undefined && root.apache !== null) {
    const a = obj(root.apache, "apache");
    noUnknown(a, APACHE_KEYS, "apache");
    const managerUrl = str(a, "managerUrl", "apache");
    if (!/^http:\/\/[^\s/?#]+\/[^\s?#]*$/.test(managerUrl)) {
      throw new ConfigError("apache.managerUrl", `expected http://host:port/balancer-manager, got ${show(managerUrl)}`);
    }
    apache = { managerUrl, balancer: str(a, "balancer", "apache", balancer.name) };
  }
  if (mode === "agent" && !apache) throw new ConfigError("apache", 'required when mode is "agent"');
  if (mode === "agent" && !balancer.healthCheck) throw new ConfigError("balancer.healthCheck", 'required when mode is "agent"');

  const t = optObj(root, "timeouts", "timeouts");
  noUnknown(t, TIMEOUT_KEYS, "timeouts");
  const timeouts = {
    connectMs: int(t, "connectMs", "timeouts", 3000, 1, 600_000),
    // HAProxy's `timeout queue`: a saturated member answers 503 instead of holding clients.
    queueMs: int(t, "queueMs", "timeouts", 5000, 1, 600_000),
    headersMs: int(t, "headersMs", "timeouts", 30_000, 1, 3_600_000),
    idleMs: int(t, "idleMs", "timeouts", 60_000, 1, 3_600_000),
    clientHeadersMs: int(t, "clientHeadersMs", "timeouts", 20_000, 1, 600_000),
    clientRequestMs: int(t, "clientRequestMs", "timeouts", 300_000, 0, 3_600_000),
    keepAliveMs: int(t, "keepAliveMs", "timeouts", 5000, 1, 600_000),
    // Shorter than Apache's default KeepAliveTimeout (5 s), so we close idle member connections first.
    memberKeepAliveMs: int(t, "memberKeepAliveMs", "timeouts", 4000, 1, 600_000),
    shutdownMs: int(t, "shutdownMs", "timeouts", 30_000, 0, 3_600_000),
  };
  const l = optObj(root, "limits", "limits");
  noUnknown(l, LIMIT_KEYS, "limits");
  const limits = {
    maxHeaderSize: int(l, "maxHeaderSize", "limits", 16384, 1024, 1_048_576),
    maxHeadersCount: int(l, "maxHeadersCount", "limits", 100, 4, 2000),
  };
  const trust = trustForwardedFrom(root.trustForwardedFrom);
  const logO = optObj(root, "log", "log");
  noUnknown(logO, LOG_KEYS, "log");
  const mgr = manager(root.manager, "manager");
  const red = redundancy(root.redundancy, "redundancy");
  // Peers carry changes to each other's manager API, and take them there.
  if (red && !mgr) throw new ConfigError("redundancy", "needs manager (peers send changes to each other's manager, with its token)");

  return {
    mode,
    listen,
    publicUrl,
    tls: tlsConfig(root.tls, listen, publicUrl),
    manager: mgr,
    balancer,
    apache,
    trustForwardedFrom: trust.list,
    trustForwardedFromText: trust.text,
    timeouts,
    limits,
    via: bool(root, "via", "", true),
    workers: workers(root.workers),
    log: { requests: bool(logO, "requests", "log", true), withholdPaths: withholdPaths(logO.withholdPaths) },
    redundancy: red,
  };
}

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError("(file)", `cannot read ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("(file)", `${file} is not valid JSON: ${(e as Error).message}`);
  }
  return validateConfig(raw);
}
