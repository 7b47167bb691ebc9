import { Secret } from "./secret";

/**
 * What verify knows about a cluster: only what a client could see (the
 * published URLs and the sticky cookie's name), and the manager token an
 * operator holds. Nothing else from the stack's state or config: verify sees
 * the cluster as its users and an attacker do.
 */
export interface VerifyTarget {
  /** The stack's name, for the printout. */
  stack: string;
  /** Where clients go: the HTTPS origin when the stack has one. */
  balancerUrl: string;
  /** With HTTPS: the plain origin too, which should redirect to balancerUrl. */
  plainUrl?: string;
  /** PEM of the certificate authority trusted for HTTPS (--cacert, or a local stack's own CA); absent: the system's. */
  ca?: string;
  /** Apache's balancer-manager (engine apache) or proxy-node's manager (engine proxy-node), if published. */
  balancerManagerUrl?: string;
  /** proxy-node's manager (with engine apache: the agent's), if published. */
  proxyNodeManagerUrl?: string;
  /** Every web server by name; undefined where it is not published. */
  webUrls: Record<string, string | undefined>;
  cookieName: string;
  /** The sticky cookie's value up to the route: `balancer.` */
  cookieValuePrefix: string;
  managerToken?: Secret;
  /** A balancer pair: the address keepalived moves, and each balancer's own managers. */
  virtualAddress?: string;
  balancers?: Record<string, { proxyNodeManagerUrl?: string }>;
}

/** The stack output `stickyCookie`, `BALANCEID=balancer.<route>`, taken apart. */
export function parseStickyCookie(output: string): { cookieName: string; cookieValuePrefix: string } {
  const m = /^([^=\s;]+)=([^;\s]*)<route>$/.exec(output);
  if (!m) throw new Error(`stickyCookie output ${JSON.stringify(output)} is not name=prefix<route>`);
  return { cookieName: m[1], cookieValuePrefix: m[2] };
}

/**
 * With engine apache the balancer-manager is Apache's page under the balancer's
 * URL; with proxy-node both manager outputs are proxy-node's one manager.
 */
export function engineOf(t: VerifyTarget): "apache" | "proxy-node" {
  return t.balancerManagerUrl !== undefined && t.balancerManagerUrl === t.proxyNodeManagerUrl ? "proxy-node" : "apache";
}

/** Web servers in the stack, with their direct URL where one is published. */
export function webServers(t: VerifyTarget): Array<{ name: string; url?: string }> {
  return Object.entries(t.webUrls).map(([name, url]) => ({ name, url }));
}
