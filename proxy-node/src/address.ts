// Which balancer holds the virtual address: keepalived adds it to one host's
// interface and removes it from the other, so the answer is whether it is on
// one of ours right now. Read on every call (a few microseconds): a cached
// answer would show the wrong balancer for as long as it lived after a move.
import * as os from "node:os";

type Interfaces = ReturnType<typeof os.networkInterfaces>;

export function holdsAddress(address: string, interfaces: Interfaces = os.networkInterfaces()): boolean {
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) if (a.family === "IPv4" && a.address === address) return true;
  }
  return false;
}
