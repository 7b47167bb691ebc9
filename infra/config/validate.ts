import { ConfigError } from "./errors";
import { attachHostKeys, readLocalHostKeys } from "./host-keys";
import {
  BALANCER_NAME,
  COMPOSER_RULE,
  COOKIE_NAME,
  COOKIE_NAME_RULE,
  COOKIE_VALUE_PREFIX,
  DOCKER_IMAGE,
  DOCKER_NAME,
  isComposerConstraint,
  isHostname,
  isIPv4,
  isIPv6,
  isOrigin,
  isTarballUrl,
  quote,
  RESERVED_SQL_USERS,
  ROUTE,
  SEPARATORS,
  SQL_DATABASE,
  SQL_USER,
  SSH_USER,
  STICKYSESSION_MAX,
  SYSTEM_SCHEMAS,
} from "./grammar";
import { readCron } from "./cron";
import { readRollout } from "./rollout";
import { readPhp } from "./php";
import { checkClusterAddress, checkIPv4Block, checkRequireIp, checkSshHost } from "./network";
import { checkPublicPath } from "./paths";
import { pcreProblem } from "./pcre";
import { checkDistinctPorts, Listener } from "./ports";
import { checkTlsListeners, readTls } from "./tls";
import { ConfigReader } from "./reader";
import {
  AppModel,
  balancerHosts,
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
  RedundancyModel,
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
export const SECRET_KEYS = ["dbPassword", "hashSalt", "managerToken", "cronKey", "sshPrivateKey", "tlsPrivateKey"] as const;
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
  "localHostKeys",
  "cron",
  "rollout",
  "php",
  ...SECRET_KEYS,
];

const HOST_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Names the program gives hosts itself (a pair's second balancer is balancer2 unless named; its forwarder is front). */
const RESERVED_HOST_NAMES = ["balancer", "balancer2", "data", "front"];

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
    if (balancer.redundancy) {
      balancer.redundancy.peer.clusterAddress = `${prefix}.6`;
      if (!root.child("balancer").child("redundancy").has("virtualAddress")) balancer.redundancy.virtualAddress = `${prefix}.4`;
    }
    data.host.clusterAddress = `${prefix}.10`;
    web.forEach((w, i) => {
      w.host.clusterAddress = `${prefix}.${11 + i}`;
      w.memberUrl = `http://${w.host.clusterAddress}:80`;
    });
    if (web.length > 200) throw new ConfigError(`${id.project}:web`, "at most 200 web servers fit the docker subnet");
    checkDockerPorts(docker, web.length, root.child("docker").key, balancer.redundancy !== undefined);
  }

  const names = new Set<string>();
  // The pair's second balancer last: it is named in its own setting, and a clash is reported there.
  for (const h of [data.host, balancer.host, ...web.map((w) => w.host), ...balancerHosts(balancer).slice(1)]) {
    const key = h === balancer.redundancy?.peer ? `${id.project}:balancer.redundancy.peer.name` : `${id.project}:web`;
    if (names.has(h.name)) throw new ConfigError(key, `host name "${h.name}" is used twice`);
    names.add(h.name);
  }
  if (balancer.redundancy) {
    const subnet = docker?.subnet ?? (root.has("localHosts") ? root.child("localHosts").string("subnet") : undefined);
    checkVirtualAddress(
      root.child("balancer").child("redundancy"),
      balancer.redundancy,
      [data.host, ...balancerHosts(balancer), ...web.map((w) => w.host)],
      subnet,
    );
  }
  if (target === "ssh") {
    const recorded = readLocalHostKeys(root, [...names]);
    const hosts = [
      { host: data.host, key: `${id.project}:data` },
      { host: balancer.host, key: `${id.project}:balancer` },
      ...(balancer.redundancy ? [{ host: balancer.redundancy.peer, key: `${id.project}:balancer.redundancy.peer` }] : []),
      ...web.map((w, i) => ({ host: w.host, key: `${id.project}:web[${i}]` })),
    ];
    attachHostKeys(hosts, recorded, root.has("localHosts"));
  }

  const serverName = root.string("serverName", "localhost");
  // It lands in both vhosts' ServerName, in the cookie's domain (mod_rewrite's
  // `[CO=...]`, where ":" separates fields, so no IPv6) and in proxy-node's publicUrl.
  if (!isHostname(serverName) && !isIPv4(serverName)) {
    throw new ConfigError(
      `${root.key}serverName`,
      `${quote(serverName)} is not accepted; use a host name (letters, digits, - and . only; labels of at most 63 characters, 253 in all) or an IPv4 address`,
    );
  }
  balancer.tls = readTls(root.child("balancer"), target, serverName, balancer.host.url ? new URL(balancer.host.url).hostname : serverName);
  checkTlsListeners(root.child("balancer").key, balancer);
  const trustedHostPatterns = root.strings("trustedHostPatterns", [`^${escapeRegex(serverName)}$`]);
  trustedHostPatterns.forEach((p, i) => {
    const problem = pcreProblem(p);
    if (problem !== undefined) {
      throw new ConfigError(
        `${id.project}:trustedHostPatterns[${i}]`,
        `${quote(p)} is not accepted: ${problem}; use a regular expression PHP's PCRE and JavaScript read alike, such as ^www\\.example\\.com$ (literals, \\. . [a-z0-9-] ^ $ | (?:...) * + ? {n,m})`,
      );
    }
  });

  const filesCfg = root.child("files");
  filesCfg.onlyKeys(["publicPath", "share"]);
  const share = target === "docker" ? "volume" : filesCfg.oneOf("share", ["nfs", "external"] as const, "nfs");
  const publicPath = filesCfg.string("publicPath", "/srv/drupal-files");
  checkPublicPath(`${filesCfg.key}.publicPath`, publicPath);

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
    cron: readCron(root.child("cron")),
    rollout: readRollout(root.child("rollout"), target, web.length),
    php: readPhp(root.child("php")),
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
    if (!isTarballUrl(url)) {
      throw new ConfigError(
        `${d.key}.url`,
        `${quote(url)} is not accepted; use an http(s) URL of a Drupal release .tar.gz whose path has only letters, digits and . _ ~ - /`,
      );
    }
    return { kind, source: { type: "tarball", url } };
  }
  const version = d.string("version", "^10");
  if (!isComposerConstraint(version)) throw new ConfigError(`${d.key}.version`, `${quote(version)} is not accepted; use ${COMPOSER_RULE}`);
  return { kind, source: { type: "composer", version } };
}

function readSticky(b: ConfigReader): StickyModel {
  const stickysession = b.string("stickysession", "BALANCEID");
  const parts = stickysession.split("|");
  if (parts.length > 2 || parts.some((p) => !COOKIE_NAME.test(p)) || stickysession.length > STICKYSESSION_MAX) {
    throw new ConfigError(
      `${b.key}.stickysession`,
      `${quote(stickysession)} is not accepted; use a cookie name (BALANCEID) or cookie|path-parameter (JSESSIONID|jsessionid) of ${COOKIE_NAME_RULE}, at most ${STICKYSESSION_MAX} characters in all`,
    );
  }
  const separator = b.string("stickysessionsep", ".");
  if (!(SEPARATORS as readonly string[]).includes(separator)) {
    throw new ConfigError(`${b.key}.stickysessionsep`, `${quote(separator)} is not accepted; use one of: ${SEPARATORS.join(" ")}`);
  }
  const valuePrefix = b.string("cookieValuePrefix", `balancer${separator}`);
  // It lands in mod_rewrite's `[CO=name:value:...]` flag, where ":" "]" "," "%" "$"
  // and "\\" all mean something, and in a URL path parameter with Tomcat style.
  if (!COOKIE_VALUE_PREFIX.test(valuePrefix) || valuePrefix.length > 64) {
    throw new ConfigError(
      `${b.key}.cookieValuePrefix`,
      `${quote(valuePrefix)} is not accepted; use at most 64 letters, digits and ${SEPARATORS.join(" ")}, ending with the separator, such as balancer${separator}`,
    );
  }
  // Apache takes the route as everything after the FIRST separator, so the prefix
  // must hold exactly one, at its end; otherwise no request would ever stick.
  if (!valuePrefix.endsWith(separator) || valuePrefix.indexOf(separator) !== valuePrefix.length - 1) {
    throw new ConfigError(
      `${b.key}.cookieValuePrefix`,
      `"${valuePrefix}" must end with the separator "${separator}" and contain no other, because Apache reads the route after the first "${separator}"; use one such as balancer${separator}`,
    );
  }
  const cookieDomain = b.string("cookieDomain", "");
  const domain = cookieDomain.startsWith(".") ? cookieDomain.slice(1) : cookieDomain;
  if (cookieDomain !== "" && !isHostname(domain) && !isIPv4(cookieDomain)) {
    throw new ConfigError(
      `${b.key}.cookieDomain`,
      `${quote(cookieDomain)} is not accepted; use a host name (letters, digits, - and . only), optionally with a leading ".", or an IPv4 address`,
    );
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
  s.onlyKeys(["host", "port", "user", "hostKey"]);
  const host = s.string("host");
  checkSshHost(`${s.key}.host`, host);
  const user = s.string("user", "root");
  if (!SSH_USER.test(user)) throw new ConfigError(`${s.key}.user`, `${quote(user)} is not accepted; use a login name of lower-case letters, digits, _ and -`);
  return { host, port: s.port("port", 22), user, hostKey: s.optionalString("hostKey") };
}

function readUrl(r: ConfigReader, name: string): string | undefined {
  const url = r.optionalString(name);
  if (url === undefined) return undefined;
  // An origin only: it is where a person reaches the service, and proxy-node takes
  // the balancer's as its publicUrl, which must be an origin.
  if (!isOrigin(url)) {
    throw new ConfigError(
      `${r.key}.${name}`,
      `${quote(url)} is not accepted; use an http:// or https:// URL of a host and optional port, such as http://www.example.org:8080`,
    );
  }
  return url.replace(/\/$/, "");
}

function readHost(r: ConfigReader, name: string, role: Role, target: Target, extraKeys: string[]): HostModel {
  r.onlyKeys(["ssh", "address", "url", ...extraKeys]);
  if (target === "ssh") {
    if (!r.has("ssh")) throw new ConfigError(`${r.key}.ssh`, "is required for target ssh (host, port, user)");
    const clusterAddress = r.string("address");
    checkClusterAddress(`${r.key}.address`, clusterAddress);
    return { name, role, clusterAddress, ssh: readSsh(r), url: readUrl(r, "url") };
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
    if (!HOST_NAME.test(name) || RESERVED_HOST_NAMES.includes(name)) {
      throw new ConfigError(`${r.key}.name`, `"${name}" is not accepted; use a lower-case host name other than ${RESERVED_HOST_NAMES.join(", ")}`);
    }
    const route = r.string("route", name);
    if (!ROUTE.test(route) || route.includes(sticky.separator)) {
      throw new ConfigError(
        `${r.key}.route`,
        `${quote(route)} is not accepted; use at most 63 letters, digits, - and _ (no "${sticky.separator}", the sticky separator)`,
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
  if (!SQL_DATABASE.test(database)) {
    throw new ConfigError(`${d.key}.database`, `${quote(database)} is not accepted; use at most 64 letters, digits and _, not starting with a digit`);
  }
  // MariaDB's own schemas: ALL on one of them lets the web servers' account rewrite grants.
  if ((SYSTEM_SCHEMAS as readonly string[]).includes(database.toLowerCase())) {
    throw new ConfigError(`${d.key}.database`, `${quote(database)} is a MariaDB system schema; use a database of its own, such as drupal`);
  }
  if (!SQL_USER.test(user)) {
    throw new ConfigError(`${d.key}.user`, `${quote(user)} is not accepted; use at most 32 letters, digits and _, not starting with a digit`);
  }
  if ((RESERVED_SQL_USERS as readonly string[]).includes(user.toLowerCase())) {
    throw new ConfigError(`${d.key}.user`, `${quote(user)} is an account MariaDB keeps for itself; use an account of its own, such as drupal`);
  }
  return { host, database, user, port: d.port("port", 3306) };
}

function readBalancer(b: ConfigReader, target: Target, docker?: DockerModel): BalancerModel {
  const host = readHost(b, "balancer", "balancer", target, [
    "engine",
    "name",
    "lbmethod",
    "retry",
    "connectTimeout",
    "timeout",
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
    "reuseConnections",
    "redundancy",
    "directUrl",
    "tls",
  ]);
  const name = b.string("name", "drupal");
  if (!BALANCER_NAME.test(name)) {
    throw new ConfigError(`${b.key}.name`, `${quote(name)} is not accepted; use at most 84 letters, digits, - and _ (Apache's limit for balancer://<name>)`);
  }
  const managerAllow = b.strings("managerAllow", ["127.0.0.1"]);
  managerAllow.forEach((cidr, i) => checkRequireIp(`${b.key}.managerAllow[${i}]`, cidr));
  const httpPort = b.port("httpPort", 80);
  const managerPort = b.port("managerPort", 8081);
  if (docker) host.url = `http://${docker.bindAddress}:${docker.httpPort}`;
  const managerUrl = docker ? `http://${docker.bindAddress}:${docker.managerPort}` : readUrl(b, "managerUrl");
  // balancer.url is where clients go. With a pair that is the virtual address,
  // and each balancer's own HTTP port (its Apache manager) may have a directUrl.
  const publicUrl = host.url;
  const redundancy = b.has("redundancy") ? readRedundancy(b.child("redundancy"), target, docker) : undefined;
  if (redundancy) host.url = docker ? undefined : readUrl(b, "directUrl");
  else if (b.has("directUrl"))
    throw new ConfigError(`${b.key}.directUrl`, "is only used with balancer.redundancy (a balancer's own URL beside the pair's balancer.url); remove it");
  const engine = b.oneOf("engine", ENGINES, "apache");
  // What listens on the balancer (infra/payload/balancer.ts): the client port (Apache
  // or proxy-node), proxy-node's manager, and with Apache in front proxy-node's own
  // listener, which it keeps at managerPort + 1, off Apache's port.
  const listeners: Listener[] = [
    { key: `${b.key}.httpPort`, what: engine === "apache" ? "Apache" : "proxy-node", port: httpPort },
    { key: `${b.key}.managerPort`, what: "proxy-node's manager", port: managerPort },
  ];
  if (engine === "apache") listeners.push({ key: `${b.key}.managerPort`, what: "proxy-node's agent listener (managerPort + 1)", port: managerPort + 1 });
  checkDistinctPorts(listeners);
  const proxyNodeWorkers: ProxyNodeWorkers = b.integerOr("proxyNodeWorkers", { min: 1, max: 64 }, ["auto"] as const, "auto");
  if (engine === "apache" && b.has("proxyNodeWorkers")) {
    // With Apache in front, proxy-node is only its agent and serves no clients: the setting would do nothing.
    throw new ConfigError(`${b.key}.proxyNodeWorkers`, "is only used with balancer.engine proxy-node; remove it for engine apache");
  }
  if (engine === "proxy-node" && b.has("reuseConnections")) {
    // proxy-node always keeps connections to members: it finds a lost host and resends, which Apache cannot.
    throw new ConfigError(`${b.key}.reuseConnections`, "is only used with balancer.engine apache; remove it for engine proxy-node");
  }
  return {
    host,
    publicUrl,
    redundancy,
    engine,
    name,
    lbmethod: b.oneOf("lbmethod", LBMETHODS, "byrequests"),
    retry: b.integer("retry", { min: 0, max: 3600 }, 60),
    // A member on the cluster's LAN accepts in well under a millisecond; every
    // second beyond that is a second a client waits on a host that is gone.
    connectTimeout: b.integer("connectTimeout", { min: 1, max: 60 }, 2),
    timeout: b.integer("timeout", { min: 1, max: 3600 }, 60),
    reuseConnections: b.boolean("reuseConnections", false),
    logLevel: b.oneOf("logLevel", LOG_LEVELS, "warn"),
    managerAllow,
    httpPort,
    managerPort,
    managerUrl,
    proxyNodeWorkers,
  };
}

/** VRRP's interface names: what `ip link` accepts (at most 15 characters, no / or space). */
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

function readRedundancy(r: ConfigReader, target: Target, docker?: DockerModel): RedundancyModel {
  r.onlyKeys(["virtualAddress", "routerId", "interface", "advertInterval", "preempt", "peer"]);
  const p = r.child("peer");
  if (target === "ssh" && !r.has("peer"))
    throw new ConfigError(`${r.key}.peer`, "is required: the second balancer (name, address, ssh, and optionally directUrl and managerUrl)");
  const name = p.string("name", "balancer2");
  if (!HOST_NAME.test(name) || ["balancer", "data", "front"].includes(name)) {
    throw new ConfigError(`${p.key}.name`, `"${name}" is not accepted; use a lower-case host name other than balancer, data and front`);
  }
  if (p.has("url"))
    throw new ConfigError(`${p.key}.url`, "is not used: clients use the pair's balancer.url; give this balancer's own HTTP address as directUrl");
  const peer = readHost(p, name, "balancer", target, ["name", "directUrl", "managerUrl"]);
  peer.url = docker ? undefined : readUrl(p, "directUrl");
  let virtualAddress = "";
  if (target === "ssh" || r.has("virtualAddress")) {
    virtualAddress = r.string("virtualAddress");
    if (!isIPv4(virtualAddress)) {
      throw new ConfigError(
        `${r.key}.virtualAddress`,
        `${quote(virtualAddress)} is not accepted; use a free IPv4 address on the balancers' network, such as 192.168.1.4`,
      );
    }
  }
  const iface = r.string("interface", "eth0");
  if (!INTERFACE_NAME.test(iface))
    throw new ConfigError(`${r.key}.interface`, `${quote(iface)} is not accepted; use a network interface name such as eth0 or ens18`);
  return {
    peer,
    peerManagerUrl: docker ? `http://${docker.bindAddress}:${docker.peerManagerPort}` : readUrl(p, "managerUrl"),
    virtualAddress,
    routerId: r.integer("routerId", { min: 1, max: 255 }, 51),
    interface: iface,
    advertInterval: r.integer("advertInterval", { min: 1, max: 255 }, 1),
    preempt: r.boolean("preempt", false),
  };
}

/**
 * The virtual address must be free: a host that has it would answer for the pair.
 * On a network we make (docker, local hosts) it must also be inside the subnet and
 * none of what docker or we give out there: the gateway (.1) and the front (.3).
 */
function checkVirtualAddress(r: ConfigReader, red: RedundancyModel, hosts: HostModel[], subnet?: string): void {
  const key = `${r.key}.virtualAddress`;
  const taken = hosts.find((h) => h.clusterAddress === red.virtualAddress);
  if (taken) throw new ConfigError(key, `${red.virtualAddress} is ${taken.name}'s own address; use a free address on the balancers' network`);
  if (subnet === undefined) return;
  const [base, bits] = subnet.split("/");
  const n = (ip: string): number => ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  const offset = n(red.virtualAddress) - n(base);
  const example = base.replace(/\.\d+$/, ".4");
  if (offset <= 0 || offset >= size - 1)
    throw new ConfigError(key, `${red.virtualAddress} is not a host address in the cluster network ${subnet}; use one such as ${example}`);
  if (offset === 1 || offset === 3)
    throw new ConfigError(
      key,
      `${red.virtualAddress} is the network's ${offset === 1 ? "gateway" : "front (the clients' forwarder)"}; use another, such as ${example}`,
    );
}

function readDocker(d: ConfigReader, id: StackIdentity): DockerModel {
  d.onlyKeys(["image", "network", "subnet", "bindAddress", "httpPort", "managerPort", "peerManagerPort", "webDirectPortBase"]);
  const subnet = d.string("subnet", "172.30.58.0/24");
  checkIPv4Block(`${d.key}.subnet`, subnet, 24);
  const bindAddress = d.string("bindAddress", "127.0.0.1");
  if (!isIPv4(bindAddress) && !isIPv6(bindAddress))
    throw new ConfigError(`${d.key}.bindAddress`, `${quote(bindAddress)} is not accepted; use an IP address such as 127.0.0.1`);
  const webDirectPortBase = d.has("webDirectPortBase") ? d.integer("webDirectPortBase", { min: 1, max: 65000 }) : undefined;
  return {
    image: dockerName(d, "image", "drupal-cluster/debian:bookworm", DOCKER_IMAGE, "a docker image such as drupal-cluster/debian:bookworm"),
    network: dockerName(d, "network", `${id.project}-${id.stack}`, DOCKER_NAME, "a docker network name of letters, digits, _ . and -"),
    subnet,
    bindAddress,
    httpPort: d.port("httpPort", 8080),
    managerPort: d.port("managerPort", 8081),
    peerManagerPort: d.port("peerManagerPort", 8083),
    webDirectPortBase,
  };
}

function readLocalHosts(r: ConfigReader, id: StackIdentity, target: Target): LocalHostsModel {
  if (target !== "ssh") throw new ConfigError(r.key, "is only used with target ssh (local hosts for the ssh target)");
  r.onlyKeys(["image", "init", "network", "subnet", "filesVolume"]);
  const subnet = r.string("subnet");
  checkIPv4Block(`${r.key}.subnet`, subnet, 28);
  return {
    image: dockerName(r, "image", "drupal-cluster/debian:bookworm", DOCKER_IMAGE, "a docker image such as drupal-cluster/debian:bookworm"),
    init: r.oneOf("init", ["script", "systemd"] as const, "script"),
    network: dockerName(r, "network", `${id.project}-${id.stack}`, DOCKER_NAME, "a docker network name of letters, digits, _ . and -"),
    subnet,
    filesVolume: dockerName(r, "filesVolume", `${id.project}-${id.stack}-files`, DOCKER_NAME, "a docker volume name of letters, digits, _ . and -"),
  };
}

/** A name handed to the docker CLI (and its `name=^...$` filters). */
function dockerName(r: ConfigReader, name: string, fallback: string, grammar: RegExp, accepted: string): string {
  const v = r.string(name, fallback);
  if (!grammar.test(v)) throw new ConfigError(`${r.key}.${name}`, `${quote(v)} is not accepted; use ${accepted}`);
  return v;
}

/** Everything the docker target publishes on its bind address. */
function checkDockerPorts(d: DockerModel, webCount: number, key: string, pair: boolean): void {
  const listeners: Listener[] = [
    { key: `${key}.httpPort`, what: "the balancer", port: d.httpPort },
    { key: `${key}.managerPort`, what: "the manager", port: d.managerPort },
  ];
  if (pair) listeners.push({ key: `${key}.peerManagerPort`, what: "the second balancer's manager", port: d.peerManagerPort });
  if (d.webDirectPortBase !== undefined) {
    for (let n = 1; n <= webCount; n++) {
      listeners.push({ key: `${key}.webDirectPortBase`, what: `web server ${n}'s direct port (webDirectPortBase + ${n})`, port: d.webDirectPortBase + n });
    }
  }
  checkDistinctPorts(listeners);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
