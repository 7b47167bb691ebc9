import * as net from "node:net";
import { ConfigError } from "./errors";
import { ConfigReader } from "./reader";
import {
  AppModel,
  BalancerModel,
  ClusterModel,
  DataModel,
  DockerModel,
  Engine,
  HostModel,
  LbMethod,
  LocalHostsModel,
  LogLevel,
  ProxyNodeWorkers,
  Role,
  SshEndpoint,
  StickyModel,
  Target,
  WebMember,
} from "../model/types";

export const TARGETS: readonly Target[] = ["ssh", "docker"];
export const ENGINES: readonly Engine[] = ["apache", "proxy-node"];
export const LBMETHODS: readonly LbMethod[] = ["byrequests", "bybusyness", "bytraffic"];
export const LOG_LEVELS: readonly LogLevel[] = ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"];

/** Secret settings: read with config.requireSecret, never part of the plain model. */
export const SECRET_KEYS = ["dbPassword", "hashSalt", "managerToken", "sshPrivateKey"] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

const TOP_LEVEL_KEYS = [
  "target",
  "app",
  "drupal",
  "serverName",
  "trustedHostPatterns",
  "balancer",
  "web",
  "data",
  "files",
  "docker",
  "localHosts",
  ...SECRET_KEYS,
];

const HOST_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const ROUTE = /^[A-Za-z0-9_-]{1,64}$/;
const SQL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+^_`|~-]+$/;

export interface StackIdentity {
  project: string;
  stack: string;
}

/**
 * Stack config (the values under `<project>:` with the prefix stripped) to the
 * validated model. Throws one ConfigError naming the first bad key.
 */
export function validateConfig(id: StackIdentity, values: Record<string, unknown>): ClusterModel {
  const root = ConfigReader.root(id.project, values);
  root.onlyKeys(TOP_LEVEL_KEYS);

  const target = root.oneOf("target", TARGETS);
  const app = readApp(root);
  const sticky = readSticky(root.child("balancer"));
  const docker = target === "docker" ? readDocker(root.child("docker"), id) : undefined;

  const web = readWeb(root, target, sticky, docker);
  const data = readData(root.child("data"), target);
  const balancer = readBalancer(root.child("balancer"), target, docker);
  if (docker) {
    // Fixed addresses: MariaDB grants and Apache's Require ip name them.
    const prefix = docker.subnet.split("/")[0].replace(/\.0$/, "");
    balancer.host.clusterAddress = `${prefix}.5`;
    data.host.clusterAddress = `${prefix}.10`;
    web.forEach((w, i) => {
      w.host.clusterAddress = `${prefix}.${11 + i}`;
      w.memberUrl = `http://${w.host.clusterAddress}:80`;
    });
    if (web.length > 200) throw new ConfigError(`${id.project}:web`, "at most 200 web servers fit the docker subnet");
  }

  const names = new Set<string>();
  for (const h of [data.host, balancer.host, ...web.map((w) => w.host)]) {
    if (names.has(h.name)) throw new ConfigError(`${id.project}:web`, `host name "${h.name}" is used twice`);
    names.add(h.name);
  }

  const serverName = root.string("serverName", "localhost");
  const trustedHostPatterns = root.strings("trustedHostPatterns", [`^${escapeRegex(serverName)}$`]);
  trustedHostPatterns.forEach((p, i) => {
    try {
      new RegExp(p);
    } catch {
      throw new ConfigError(`${id.project}:trustedHostPatterns[${i}]`, `"${p}" is not a valid regular expression`);
    }
  });

  const filesCfg = root.child("files");
  filesCfg.onlyKeys(["publicPath", "share"]);
  const share = target === "docker" ? "volume" : filesCfg.oneOf("share", ["nfs", "external"] as const, "nfs");
  const publicPath = filesCfg.string("publicPath", "/srv/drupal-files");
  if (!publicPath.startsWith("/")) {
    throw new ConfigError(`${filesCfg.key}.publicPath`, `expected an absolute path, got "${publicPath}"`);
  }

  return {
    project: id.project,
    stack: id.stack,
    target,
    app,
    serverName,
    trustedHostPatterns,
    sticky,
    balancer,
    web,
    data,
    files: { publicPath, share },
    docker,
    localHosts: root.has("localHosts") ? readLocalHosts(root.child("localHosts"), id, target) : undefined,
  };
}

function readApp(root: ConfigReader): AppModel {
  const kind = root.oneOf("app", ["probe", "drupal"] as const, "probe");
  if (kind === "probe") return { kind };
  const d = root.child("drupal");
  d.onlyKeys(["source", "url", "version"]);
  const source = d.oneOf("source", ["tarball", "composer"] as const, "tarball");
  if (source === "tarball") {
    const url = d.string("url");
    if (!/^https?:\/\/\S+\.tar\.gz$/.test(url)) {
      throw new ConfigError(`${d.key}.url`, `expected an http(s) URL of a Drupal release .tar.gz, got "${url}"`);
    }
    return { kind, source: { type: "tarball", url } };
  }
  return { kind, source: { type: "composer", version: d.string("version", "^10") } };
}

function readSticky(b: ConfigReader): StickyModel {
  const stickysession = b.string("stickysession", "BALANCEID");
  const parts = stickysession.split("|");
  if (parts.length > 2 || parts.some((p) => !COOKIE_NAME.test(p))) {
    throw new ConfigError(
      `${b.key}.stickysession`,
      `"${stickysession}" is not accepted; use a cookie name (BALANCEID) or cookie|path-parameter (JSESSIONID|jsessionid)`,
    );
  }
  const separator = b.string("stickysessionsep", ".");
  if (separator.length !== 1 || /[A-Za-z0-9;=,\s"]/.test(separator)) {
    throw new ConfigError(`${b.key}.stickysessionsep`, `expected one punctuation character such as ".", got "${separator}"`);
  }
  const valuePrefix = b.string("cookieValuePrefix", `balancer${separator}`);
  // Apache takes the route as everything after the FIRST separator, so the prefix
  // must hold exactly one, at its end; otherwise no request would ever stick.
  if (!valuePrefix.endsWith(separator) || valuePrefix.indexOf(separator) !== valuePrefix.length - 1) {
    throw new ConfigError(
      `${b.key}.cookieValuePrefix`,
      `"${valuePrefix}" must end with the separator "${separator}" and contain no other, because Apache reads the route after the first "${separator}"`,
    );
  }
  const cookieDomain = b.string("cookieDomain", "");
  if (cookieDomain !== "" && !/^\.?[A-Za-z0-9.-]+$/.test(cookieDomain)) {
    throw new ConfigError(`${b.key}.cookieDomain`, `"${cookieDomain}" is not a domain name`);
  }
  return {
    stickysession,
    cookieName: parts[0],
    pathParameter: parts[1],
    valuePrefix,
    separator,
    cookieDomain,
  };
}

function readSsh(r: ConfigReader): SshEndpoint {
  const s = r.child("ssh");
  s.onlyKeys(["host", "port", "user"]);
  return { host: s.string("host"), port: s.port("port", 22), user: s.string("user", "root") };
}

function readUrl(r: ConfigReader, name: string): string | undefined {
  const url = r.optionalString(name);
  if (url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${r.key}.${name}`, `"${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ConfigError(`${r.key}.${name}`, `expected an http:// or https:// URL, got "${url}"`);
  }
  return url.replace(/\/+$/, "");
}

function readHost(r: ConfigReader, name: string, role: Role, target: Target, extraKeys: string[]): HostModel {
  r.onlyKeys(["ssh", "address", "url", ...extraKeys]);
  if (target === "ssh") {
    if (!r.has("ssh")) throw new ConfigError(`${r.key}.ssh`, "is required for target ssh (host, port, user)");
    return { name, role, clusterAddress: r.string("address"), ssh: readSsh(r), url: readUrl(r, "url") };
  }
  if (r.has("ssh")) throw new ConfigError(`${r.key}.ssh`, "is only used with target ssh; remove it for target docker");
  if (r.has("address")) throw new ConfigError(`${r.key}.address`, "is assigned from docker.subnet on target docker; remove it");
  return { name, role, clusterAddress: name, url: readUrl(r, "url") };
}

function readWeb(root: ConfigReader, target: Target, sticky: StickyModel, docker?: DockerModel): WebMember[] {
  const items = root.list("web");
  if (items.length === 0) {
    throw new ConfigError(`${root.key}web`, "needs at least one web server, e.g. [{name: lb1, ...}, {name: lb2, ...}]");
  }
  const routes = new Set<string>();
  return items.map((r, i) => {
    const name = r.string("name", `lb${i + 1}`);
    if (!HOST_NAME.test(name) || name === "balancer" || name === "data") {
      throw new ConfigError(`${r.key}.name`, `"${name}" is not accepted; use a lower-case host name other than balancer and data`);
    }
    const route = r.string("route", name);
    if (!ROUTE.test(route) || route.includes(sticky.separator)) {
      throw new ConfigError(
        `${r.key}.route`,
        `"${route}" is not accepted; use letters, digits, - and _ only (no "${sticky.separator}", the sticky separator)`,
      );
    }
    if (routes.has(route)) throw new ConfigError(`${r.key}.route`, `duplicate route "${route}"; every web server needs its own`);
    routes.add(route);
    const lbfactor = r.integer("lbfactor", { min: 1, max: 100 }, 1);
    const host = readHost(r, name, "web", target, ["name", "route", "lbfactor"]);
    if (target === "docker" && docker?.webDirectPortBase !== undefined) {
      host.url = `http://${docker.bindAddress}:${docker.webDirectPortBase + i + 1}`;
    }
    return {
      host,
      route,
      lbfactor,
      memberUrl: `http://${host.clusterAddress}:80`,
      stickyValue: `${sticky.valuePrefix}${route}`,
    };
  });
}

function readData(d: ConfigReader, target: Target): DataModel {
  const host = readHost(d, "data", "data", target, ["database", "user", "port"]);
  const database = d.string("database", "drupal");
  const user = d.string("user", "drupal");
  for (const [k, v] of [["database", database], ["user", user]] as const) {
    if (!SQL_NAME.test(v)) throw new ConfigError(`${d.key}.${k}`, `"${v}" is not accepted; use letters, digits and _`);
  }
  return { host, database, user, port: d.port("port", 3306) };
}

function readBalancer(b: ConfigReader, target: Target, docker?: DockerModel): BalancerModel {
  const host = readHost(b, "balancer", "balancer", target, [
    "engine",
    "name",
    "lbmethod",
    "retry",
    "logLevel",
    "managerAllow",
    "stickysession",
    "stickysessionsep",
    "cookieValuePrefix",
    "cookieDomain",
    "httpPort",
    "managerPort",
    "managerUrl",
    "proxyNodeWorkers",
  ]);
  const name = b.string("name", "drupal");
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new ConfigError(`${b.key}.name`, `"${name}" is not accepted; use letters, digits, - and _`);
  const managerAllow = b.strings("managerAllow", ["127.0.0.1"]);
  managerAllow.forEach((cidr, i) => checkCidr(`${b.key}.managerAllow[${i}]`, cidr));
  const httpPort = b.port("httpPort", 80);
  const managerPort = b.port("managerPort", 8081);
  if (httpPort === managerPort) throw new ConfigError(`${b.key}.managerPort`, `must differ from httpPort (${httpPort})`);
  if (docker) host.url = `http://${docker.bindAddress}:${docker.httpPort}`;
  const managerUrl = docker ? `http://${docker.bindAddress}:${docker.managerPort}` : readUrl(b, "managerUrl");
  const engine = b.oneOf("engine", ENGINES, "apache");
  const proxyNodeWorkers: ProxyNodeWorkers = b.integerOr("proxyNodeWorkers", { min: 1, max: 64 }, ["auto"] as const, "auto");
  if (engine === "apache" && b.has("proxyNodeWorkers")) {
    // With Apache in front, proxy-node is only its agent and serves no clients: the setting would do nothing.
    throw new ConfigError(`${b.key}.proxyNodeWorkers`, "is only used with balancer.engine proxy-node; remove it for engine apache");
  }
  return {
    host,
    engine,
    name,
    lbmethod: b.oneOf("lbmethod", LBMETHODS, "byrequests"),
    retry: b.integer("retry", { min: 0, max: 3600 }, 60),
    logLevel: b.oneOf("logLevel", LOG_LEVELS, "warn"),
    managerAllow,
    httpPort,
    managerPort,
    managerUrl,
    proxyNodeWorkers,
  };
}

function readDocker(d: ConfigReader, id: StackIdentity): DockerModel {
  d.onlyKeys(["image", "network", "subnet", "bindAddress", "httpPort", "managerPort", "webDirectPortBase"]);
  const subnet = d.string("subnet", "172.30.58.0/24");
  checkCidr(`${d.key}.subnet`, subnet);
  const [base, prefix] = subnet.split("/");
  if (net.isIPv4(base) === false || prefix === undefined || Number(prefix) > 24 || !base.endsWith(".0")) {
    throw new ConfigError(`${d.key}.subnet`, `"${subnet}" is not accepted; use an IPv4 block of /24 or larger, such as 172.30.58.0/24`);
  }
  const bindAddress = d.string("bindAddress", "127.0.0.1");
  if (net.isIP(bindAddress) === 0) throw new ConfigError(`${d.key}.bindAddress`, `"${bindAddress}" is not an IP address`);
  const webDirectPortBase = d.has("webDirectPortBase") ? d.integer("webDirectPortBase", { min: 1, max: 65000 }) : undefined;
  return {
    image: d.string("image", "drupal-cluster/debian:bookworm"),
    network: d.string("network", `${id.project}-${id.stack}`),
    subnet,
    bindAddress,
    httpPort: d.port("httpPort", 8080),
    managerPort: d.port("managerPort", 8081),
    webDirectPortBase,
  };
}

function readLocalHosts(r: ConfigReader, id: StackIdentity, target: Target): LocalHostsModel {
  if (target !== "ssh") throw new ConfigError(r.key, "is only used with target ssh (local hosts for the ssh target)");
  r.onlyKeys(["image", "network", "subnet", "filesVolume"]);
  const subnet = r.string("subnet");
  checkCidr(`${r.key}.subnet`, subnet);
  return {
    image: r.string("image", "drupal-cluster/debian:bookworm"),
    network: r.string("network", `${id.project}-${id.stack}`),
    subnet,
    filesVolume: r.string("filesVolume", `${id.project}-${id.stack}-files`),
  };
}

/** Accepts what Apache's `Require ip` accepts that we can check: an address or address/prefix. */
export function checkCidr(key: string, cidr: string): void {
  const [addr, prefix, ...rest] = cidr.split("/");
  const family = net.isIP(addr);
  const max = family === 4 ? 32 : 128;
  const okPrefix = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= max);
  if (family === 0 || !okPrefix || rest.length > 0) {
    throw new ConfigError(key, `"${cidr}" is not an IP address or CIDR block such as 10.0.0.0/8`);
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
