// Listening sockets bound before proxy-node started, by the program that
// started it, named in one environment variable ({"client": 3, "https": 4}).
// drupal-cluster's balancer binds the client ports with SO_REUSEPORT this way
// (node 18, Debian bookworm's, cannot set it), so that Apache and proxy-node can
// both hold the port while the engine switches: the one that starts binds beside
// the one that stops, and the kernel refuses no client in between.
import type { ListenerName } from "./handover";

export const PREBOUND_ENV = "PROXY_NODE_LISTEN_FDS";

const NAMES: readonly ListenerName[] = ["client", "https", "manager"];

/**
 * The descriptors named in the environment, if any; removed from it so cluster
 * workers and a successor (which inherits the listeners by a handover) never
 * read them again. A value that is not such an object is an error naming it.
 */
export function takePrebound(env: NodeJS.ProcessEnv = process.env): Partial<Record<ListenerName, number>> {
  const raw = env[PREBOUND_ENV];
  if (raw === undefined) return {};
  delete env[PREBOUND_ENV];
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    v = null;
  }
  const bad = (why: string): Error => new Error(`${PREBOUND_ENV}=${raw}: ${why}`);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad('not an object of listener names and descriptors, such as {"client":3}');
  const out: Partial<Record<ListenerName, number>> = {};
  for (const [name, fd] of Object.entries(v as Record<string, unknown>)) {
    if (!NAMES.includes(name as ListenerName)) throw bad(`unknown listener "${name}" (${NAMES.join(", ")})`);
    // 0-2 are stdio: never a socket anyone meant to lend.
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 3) throw bad(`the descriptor of "${name}" is not a whole number from 3`);
    out[name as ListenerName] = fd;
  }
  return out;
}
