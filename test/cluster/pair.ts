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
  /** Failed requests that started once the fault was complete. */
  failedAfterFault: number;
  /** Failed requests that started once the address had moved (seen on the new holder, polled every 200 ms). */
  failedAfterMove: number;
  /** From the fault to the address seen on the other balancer, s (NaN: it did not move). */
  movedAfterS: number;
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
 * Runs `fault` while every 100 ms 4 pinned clients (2 per route) and 2 new
 * clients each start a request through the public URL, whether or not their
 * last one has been answered (clients do not wait for each other), then keeps
 * the load on for `afterMs`. Watches which balancer holds the address, to
 * tell requests sent before the move from those sent after it.
 */
export async function underPairLoad(c: RunningCluster, fault: (holder: string) => Promise<void> | void, afterMs = 8000): Promise<PairReport> {
  const samples: Sample[] = [];
  const pending: Promise<void>[] = [];
  const routes = c.model.web.map((w) => w.route);
  const send = (pinned: string): void => {
    const w = c.model.web.find((x) => x.route === pinned);
    const start = Date.now();
    pending.push(
      request(`${c.balancerUrl}/`, { headers: w ? { cookie: `${c.model.sticky.cookieName}=${w.stickyValue}` } : {}, timeoutMs: 30000 }).then(
        (r) => {
          const ok = r.status === 200;
          const server = ok ? probePage(r).server : "";
          samples.push({ start, end: Date.now(), ok, pinned, server, what: ok ? server : `status ${r.status}` });
        },
        (e: Error) => {
          samples.push({ start, end: Date.now(), ok: false, pinned, server: "", what: e.message });
        },
      ),
    );
  };
  const holderBefore = await settledHolder(c);
  const timer = setInterval(() => [routes[0], routes[0], routes[1], routes[1], "", ""].forEach(send), 100);
  let movedAt = 0;
  try {
    await sleep(1500);
    const t0 = Date.now();
    await fault(holderBefore);
    const t1 = Date.now();
    while (Date.now() - t1 < afterMs) {
      if (!movedAt && !holders(c).includes(holderBefore) && holders(c).length === 1) movedAt = Date.now();
      await sleep(200);
    }
    clearInterval(timer);
    await Promise.all(pending);
    const holderAfter = await settledHolder(c);
    return report(c, samples, t0, t1, movedAt, holderBefore, holderAfter);
  } finally {
    clearInterval(timer);
  }
}

function report(c: RunningCluster, samples: Sample[], t0: number, t1: number, movedAt: number, holderBefore: string, holderAfter: string): PairReport {
  const answers = samples
    .filter((s) => s.ok)
    .map((s) => s.end)
    .sort((a, b) => a - b);
  // The longest silence from the last answer before the fault on: no answer
  // from any client in that time.
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
    failedAfterMove: samples.filter((s) => !s.ok && movedAt > 0 && s.start > movedAt).length,
    movedAfterS: movedAt ? (movedAt - t0) / 1000 : NaN,
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
 * the skew of its priority (100: (256 - 100) / 256 s); and a second for the
 * new master's gratuitous ARP and the next SYN a waiting client's kernel sends.
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
