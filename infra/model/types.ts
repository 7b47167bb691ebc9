/**
 * The validated cluster model: the only thing payload builders and targets read.
 * Built once from stack config by infra/config/validate.ts. Secrets are not part of
 * the model (they stay Pulumi secrets): infra/config/load.ts reads them, checked
 * against their consumers' rules in infra/config/secrets.ts.
 */

export type Target = "ssh" | "docker";
export type Engine = "apache" | "proxy-node";
export type LbMethod = "byrequests" | "bybusyness" | "bytraffic";
export type LogLevel = "emerg" | "alert" | "crit" | "error" | "warn" | "notice" | "info" | "debug";
export type Role = "balancer" | "web" | "data";

export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
  /**
   * The host's public SSH key ("ssh-ed25519 AAAA..."): a host presenting another
   * is refused before anything is sent. Required, except for local hosts whose
   * keys scripts/local-hosts.ts makes and hands to the engine (localHostKeys).
   */
  hostKey?: string;
}

export interface HostModel {
  /** Host name inside the cluster and the resource name prefix: balancer, data, lb1.. */
  name: string;
  role: Role;
  /** How the other hosts reach this one (docker: the container name). */
  clusterAddress: string;
  /** ssh target only: where Pulumi connects to deliver the payload. */
  ssh?: SshEndpoint;
  /** How a person reaches this host's HTTP service from outside, if it is published. */
  url?: string;
}

/**
 * Everything the balancer and the web servers must agree on. Apache's balancer takes
 * the route as everything after the first `separator` of the sticky value, so routes
 * never contain the separator and the value is `valuePrefix + route`.
 */
export interface StickyModel {
  /** What mod_proxy_balancer's `stickysession=` gets, e.g. `BALANCEID` or `JSESSIONID|jsessionid`. */
  stickysession: string;
  /** The cookie the web servers set and the balancer reads. */
  cookieName: string;
  /** The `;name=` path parameter Apache also looks at, when configured (Tomcat style). */
  pathParameter?: string;
  /** Text before the route in the cookie value, ending in the separator: `balancer.` */
  valuePrefix: string;
  separator: string;
  /**
   * balancer.cookieDomain as set; empty when it is not. The web servers' sticky
   * cookie (mod_rewrite's CO flag, infra/payload/web.ts) then gets serverName as
   * its Domain, never host-only; Drupal's $cookie_domain gets the value as is
   * (empty: Drupal's own default).
   */
  cookieDomain: string;
}

export interface WebMember {
  host: HostModel;
  route: string;
  lbfactor: number;
  /** Apache BalancerMember URL as the balancer reaches it. */
  memberUrl: string;
  /** The sticky cookie value this server stamps: valuePrefix + route. */
  stickyValue: string;
}

export interface BalancerModel {
  /** The balancer; with a redundant pair, the first of the two (keepalived's higher priority). */
  host: HostModel;
  /**
   * Where clients reach the cluster (balancer.url): the balancer's own address,
   * or with a redundant pair the virtual address that keepalived moves.
   */
  publicUrl?: string;
  /** A second balancer sharing a virtual address with the first (the guide's step three). */
  redundancy?: RedundancyModel;
  engine: Engine;
  name: string;
  lbmethod: LbMethod;
  retry: number;
  /**
   * Seconds to wait for a member to accept a connection: Apache's
   * `connectiontimeout`, proxy-node's connect deadline, and the whole deadline
   * of a health probe (connect and answer). The longest any request or probe
   * waits on a host that is gone or cut off.
   */
  connectTimeout: number;
  /** Seconds a member may take to answer once connected (Apache's `timeout`, proxy-node's headersMs). */
  timeout: number;
  /**
   * Engine apache: keep connections to members between requests. Off, each
   * request opens its own, so a host that vanished costs the connect deadline,
   * not the answer timeout (Apache cannot resend what it sent on a dead connection).
   */
  reuseConnections: boolean;
  logLevel: LogLevel;
  /** Networks allowed to reach the balancer-manager, as Apache `Require ip` accepts them. */
  managerAllow: string[];
  httpPort: number;
  managerPort: number;
  /** Client-facing URL of proxy-node's manager (both engines run proxy-node). */
  managerUrl?: string;
  /**
   * engine proxy-node: its node:cluster workers serving clients; "auto" is resolved by
   * proxy-node on the balancer (its cores, at most 64). Unused with engine apache.
   */
  proxyNodeWorkers: ProxyNodeWorkers;
  /** HTTPS at the balancer (balancer.tls); absent: plain HTTP only. */
  tls?: TlsModel;
}

export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/**
 * TLS terminates at the balancer; the members stay plain HTTP on the cluster's
 * private network. The private key is the secret tlsPrivateKey, never in the model.
 */
export interface TlsModel {
  /** PEM: the server's certificate first, then its intermediates. */
  certificate: string;
  /** The leaf's notAfter (ISO), checked against the clock when the config was read. */
  notAfter: string;
  httpsPort: number;
  /** The https:// origin clients reach the balancer at: redirects point here. */
  url: string;
  /** Plain HTTP answers 301 to url (the balancer's own requests from loopback excepted). */
  redirect: boolean;
  /** Strict-Transport-Security max-age; 0: no header. */
  hstsMaxAge: number;
  minVersion: TlsVersion;
  /** TLS 1.2 suites, OpenSSL names ":"-separated (TLS 1.3's are OpenSSL's defaults). */
  ciphers: string;
}

/**
 * Two balancers rendered from one model, so both route a client alike (the
 * cookie names the route, not the balancer) and either can hold the address.
 */
export interface RedundancyModel {
  /** The second balancer (name balancer2 unless set). */
  peer: HostModel;
  /** Client-facing URL of the second balancer's proxy-node manager (each balancer keeps its own). */
  peerManagerUrl?: string;
  /** IPv4 address that keepalived (VRRP) keeps on whichever balancer is master. */
  virtualAddress: string;
  /** VRRP's virtual_router_id, 1-255: the same on both, unique among VRRP routers on the LAN. */
  routerId: number;
  /** The network interface that holds each balancer's cluster address and gets the virtual one. */
  interface: string;
  /** Seconds between VRRP adverts; a backup takes over after about 3 missed adverts. */
  advertInterval: number;
  /**
   * false (default): a balancer that comes back stays backup, so the address
   * moves once per failure, not twice. true: the first balancer takes it back.
   */
  preempt: boolean;
}

/** The balancer hosts: one, or the redundant pair (the first, then its peer). */
export function balancerHosts(b: BalancerModel): HostModel[] {
  return b.redundancy ? [b.host, b.redundancy.peer] : [b.host];
}

/** A worker count of 1 to 64, or "auto". */
export type ProxyNodeWorkers = number | "auto";

export interface DataModel {
  host: HostModel;
  database: string;
  user: string;
  port: number;
}

export type AppModel = { kind: "probe" } | { kind: "drupal"; source: { type: "tarball"; url: string } | { type: "composer"; version: string } };

export interface FilesModel {
  /** Where Drupal's public files live on every web server. */
  publicPath: string;
  /**
   * docker: a named volume; ssh: an NFS export from the data server, or "external"
   * when the operator mounts shared storage at publicPath on every web server.
   */
  share: "volume" | "nfs" | "external";
}

export interface DockerModel {
  image: string;
  network: string;
  /** IPv4 subnet of the private network; hosts get fixed addresses in it, so grants can name them. */
  subnet: string;
  bindAddress: string;
  httpPort: number;
  managerPort: number;
  /** With a balancer pair: where the second balancer's manager is published. */
  peerManagerPort: number;
  /** Publishes lbN's HTTP on webDirectPortBase + N when set. */
  webDirectPortBase?: number;
}

/**
 * Local Debian hosts for the ssh target (the dev stack): `npm run up` creates one
 * container per host with its cluster address on this network (scripts/local-hosts.ts).
 */
/**
 * What runs as a local host's first process: `script` starts the services from
 * the payload's boot scripts; `systemd` boots systemd, which starts what is
 * enabled, as on a real server.
 */
export type LocalHostsInit = "script" | "systemd";

export interface LocalHostsModel {
  image: string;
  init: LocalHostsInit;
  network: string;
  subnet: string;
  /** Docker volume mounted at files.publicPath on every web server (share "external"). */
  filesVolume: string;
}

export interface ClusterModel {
  project: string;
  stack: string;
  target: Target;
  app: AppModel;
  serverName: string;
  trustedHostPatterns: string[];
  sticky: StickyModel;
  balancer: BalancerModel;
  web: WebMember[];
  data: DataModel;
  files: FilesModel;
  docker?: DockerModel;
  localHosts?: LocalHostsModel;
  cron: CronModel;
  rollout: RolloutModel;
  php: PhpModel;
}

/**
 * PHP on the web servers (mod_php), as php.ini writes it: sizes in its
 * shorthand (256M), as validated (infra/config/php.ts).
 */
export interface PhpModel {
  memoryLimit: string;
  uploadMaxFilesize: string;
  postMaxSize: string;
  /** Seconds. */
  maxExecutionTime: number;
  /** OPcache's shared memory, MB. */
  opcacheMemory: number;
  /** PHP requests at once per web server: Apache prefork's MaxRequestWorkers and ServerLimit. */
  workers: number;
}

/**
 * How `up` changes the web servers (infra/components/rollout.ts). rolling: `batch`
 * at a time, each drained in the balancer, changed, health-gated and put back;
 * the next batch starts only once the last is back. parallel: all at once, no drain.
 */
export interface RolloutModel {
  mode: "rolling" | "parallel";
  batch: number;
  /** How long sticky clients may keep going on a draining member before it is disabled. */
  drainSeconds: number;
  /** How long a changed web server has to answer its health check before the rollout stops. */
  gateSeconds: number;
}

/** Drupal's cron, run once per period for the whole cluster from the balancer (infra/payload/cron.ts). */
export interface CronModel {
  periodSeconds: number;
}

export function allHosts(m: ClusterModel): HostModel[] {
  return [m.data.host, ...m.web.map((w) => w.host), ...balancerHosts(m.balancer)];
}
