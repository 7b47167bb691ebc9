/**
 * The balancer pair (issue 12): two balancers, one virtual address that
 * keepalived moves. Clients reach it through the stack's public URL, a
 * forwarder on the cluster network that stands for the clients' network
 * (scripts/local-hosts.ts, frontUp); nothing on this machine is sent to the
 * cluster network itself. Every scenario runs under steady load of pinned and
 * new clients, and every request is timed.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { balancerHosts, HostModel } from "../../infra/model/types";
import { containerName } from "../../scripts/local-hosts";
import { probePage, request } from "../support/http-client";
import { onHost, RunningCluster } from "../support/local-cluster";

interface Sample {
  start: number;
  end: number;
  ok: boolean;
  /** The pinned route, or "" for a new client. */
  pinned: string;
  server: string;
  what: string;
}

export interface PairReport {
  sent: number;
  failed: number;
  /** Failed requests that started once the fault was complete: none may fail that a client sends after the loss. */
  failedAfterFault: number;
  /** The longest time without any answer from the last one before the fault on (last answer before, first after). */
  gapS: number;
  longestMs: number;
  /** Pinned requests answered after the move by a web server other than their route's. */
  pinnedMoved: number;
  holderBefore: string;
  holderAfter: string;
  failures: string[];
}

export function pairHosts(c: RunningCluster): HostModel[] {
  return balancerHosts(c.model.balancer);
}

/** The balancers that hold the virtual address now, by name (one, when the pair is healthy). */
export function holders(c: RunningCluster): string[] {
  const vip = c.model.balancer.redundancy!.virtualAddress;
  return pairHosts(c)
    .filter((h) => onHost(c.model, h.name, `ip -o -4 addr show | grep -qF ' ${vip}/'`).code === 0)
    .map((h) => h.name);
}

/** Waits until exactly one balancer holds the address and returns its name. */
export async function settledHolder(c: RunningCluster, timeoutMs = 20000): Promise<string> {
  const t0 = Date.now();
  let now: string[] = [];
  while (Date.now() - t0 < timeoutMs) {
    now = holders(c);
    if (now.length === 1) return now[0];
    await sleep(250);
  }
  throw new Error(`the virtual address did not settle on one balancer within ${timeoutMs} ms: held by [${now.join(", ")}]`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function docker(args: string[]): void {
  execFileSync("docker", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function balancerContainer(c: RunningCluster, name: string): string {
  const h = pairHosts(c).find((x) => x.name === name);
  assert.ok(h, `no balancer ${name}`);
  return containerName(c.model, h);
}

/**
 * Runs `fault` while 4 pinned clients (2 per web server route) and 2 loops of
 * new clients each send a request every 100 ms through the public URL, then
 * keeps the load on for `afterMs`.
 */
export async function underPairLoad(c: RunningCluster, fault: (holder: string) => Promise<void> | void, afterMs = 8000): Promise<PairReport> {
  const samples: Sample[] = [];
  let running = true;
  const routes = c.model.web.map((w) => w.route);
  const loop = async (pinned: string): Promise<void> => {
    const w = c.model.web.find((x) => x.route === pinned);
    while (running) {
      const start = Date.now();
      try {
        const r = await request(`${c.balancerUrl}/`, { headers: w ? { cookie: `${c.model.sticky.cookieName}=${w.stickyValue}` } : {}, timeoutMs: 30000 });
        const ok = r.status === 200;
        const server = ok ? probePage(r).server : "";
        samples.push({ start, end: Date.now(), ok, pinned, server, what: ok ? server : `status ${r.status}` });
      } catch (e) {
        samples.push({ start, end: Date.now(), ok: false, pinned, server: "", what: (e as Error).message });
      }
      await sleep(100);
    }
  };
  const holderBefore = await settledHolder(c);
  const loops = [routes[0], routes[0], routes[1], routes[1], "", ""].map((p) => loop(p));
  await sleep(1500);
  const t0 = Date.now();
  await fault(holderBefore);
  const t1 = Date.now();
  await sleep(afterMs);
  running = false;
  await Promise.all(loops);
  const holderAfter = await settledHolder(c);

  const answers = samples
    .filter((s) => s.ok)
    .map((s) => s.end)
    .sort((a, b) => a - b);
  // The longest silence from the last answer before the fault on: no answer
  // from any of the six clients in that time.
  const from = answers.filter((e) => e <= t0).pop() ?? t0;
  let gap = 0;
  let last = from;
  for (const e of answers.filter((x) => x > from)) {
    gap = Math.max(gap, e - last);
    last = e;
  }
  const w = c.model.web;
  return {
    sent: samples.length,
    failed: samples.filter((s) => !s.ok).length,
    failedAfterFault: samples.filter((s) => !s.ok && s.start > t1).length,
    gapS: gap / 1000,
    longestMs: Math.max(...samples.map((s) => s.end - s.start)),
    pinnedMoved: samples.filter((s) => s.ok && s.pinned && s.start > t1 && s.server !== w.find((x) => x.route === s.pinned)!.host.name).length,
    holderBefore,
    holderAfter,
    failures: samples.filter((s) => !s.ok).map((s) => `${new Date(s.start).toISOString()} +${s.end - s.start} ms: ${s.what}`),
  };
}

/**
 * VRRP's own bound on a backup's wait for a silent master: three adverts plus
 * the skew of its priority (100: (256 - 100) / 256 s), and a second for the
 * forwarder's next try, which stands for the client's resent SYN.
 */
export function failoverBoundS(c: RunningCluster): number {
  const r = c.model.balancer.redundancy!;
  return 3 * r.advertInterval + (256 - 100) / 256 + 1;
}

/** What stops a balancer's engine while its host stays up. */
export function stopEngine(c: RunningCluster): string {
  return c.model.balancer.engine === "apache" ? "service apache2 stop" : "proxy-node-service stop";
}

export function startEngine(c: RunningCluster): string {
  return c.model.balancer.engine === "apache" ? "service apache2 start" : "proxy-node-service start";
}

/** The web server new clients reach through one balancer's own HTTP port (its directUrl). */
export async function newClientsThrough(url: string, clients: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < clients; i++) {
    const r = await request(`${url}/`, { timeoutMs: 10000 });
    assert.equal(r.status, 200, `${url} answered ${r.status}`);
    const server = probePage(r).server;
    counts[server] = (counts[server] ?? 0) + 1;
  }
  return counts;
}

/** The same pinned client, sent to each balancer directly: the web server each one routes it to. */
export async function pinnedThroughEach(c: RunningCluster, route: string): Promise<Record<string, string>> {
  const w = c.model.web.find((x) => x.route === route)!;
  const out: Record<string, string> = {};
  for (const h of pairHosts(c)) {
    const r = await request(`${h.url}/`, { headers: { cookie: `${c.model.sticky.cookieName}=${w.stickyValue}` }, timeoutMs: 10000 });
    out[h.name] = r.status === 200 ? probePage(r).server : `status ${r.status}`;
  }
  return out;
}
