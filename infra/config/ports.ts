/**
 * Ports that must not collide: everything that listens on one host, and
 * everything one docker target publishes on one address. A collision would only
 * show on the host, as a service that cannot bind, after other hosts were provisioned.
 */
import { ConfigError } from "./errors";

export interface Listener {
  /** The key the operator sets, e.g. drupal-cluster:balancer.managerPort. */
  key: string;
  /** What listens there, for the message. */
  what: string;
  port: number;
}

/** Throws naming the later of two listeners on one port, or one beyond 65535. */
export function checkDistinctPorts(listeners: readonly Listener[]): void {
  const seen = new Map<number, Listener>();
  for (const l of listeners) {
    if (l.port < 1 || l.port > 65535) {
      throw new ConfigError(l.key, `gives ${l.what} port ${l.port}, outside 1 to 65535; use a lower port`);
    }
    const other = seen.get(l.port);
    if (other) {
      throw new ConfigError(
        l.key,
        `gives ${l.what} port ${l.port}, which ${other.what} (${other.key}) uses already; use a port no other listener on that host uses`,
      );
    }
    seen.set(l.port, l);
  }
}
