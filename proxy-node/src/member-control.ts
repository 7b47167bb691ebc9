// What `proxy-node drain|disable|enable|status` do to a running proxy-node:
// through its manager API when the config has one (either mode: in agent mode
// the manager writes the change into Apache and carries it to the peers, so
// proxy-node, Apache and the other balancer agree), else straight into Apache.
import type { Config, MemberStatus } from "./config";
import { ApacheAgent, sameWorker } from "./agent";
import type { Logger } from "./log";
import { managerCall as call } from "./manager-client";

export interface MemberReport {
  route: string;
  url: string;
  status: MemberStatus;
  /** "ok" when it takes requests; else disabled, draining, hcfail, error... */
  state: string;
}

/** The member named on the command line is not in this config: exit 3, so a script can tell it from a failure. */
export class UnknownMember extends Error {}

function known(cfg: Config, route: string): void {
  if (!cfg.balancer.members.some((m) => m.route === route)) {
    throw new UnknownMember(`no member with route ${route} in this config (routes: ${cfg.balancer.members.map((m) => m.route).join(", ")})`);
  }
}

/** Requests, busy and counters of one member as the running proxy-node reports them. */
async function memberJson(cfg: Config, route: string): Promise<Record<string, unknown>> {
  known(cfg, route);
  const r = await call(cfg, "GET", "/api/members");
  if (r.status !== 200) throw new Error(`the manager answered ${r.status} to GET /api/members`);
  const members = (JSON.parse(r.body) as { members: Array<Record<string, unknown>> }).members;
  const m = members.find((x) => x.route === route);
  if (!m) throw new UnknownMember(`the running proxy-node has no member with route ${route} (not reloaded since it was added?)`);
  return m;
}

/** The other members the running proxy-node sends new clients to: enabled, and passing their health checks. */
export async function othersServing(cfg: Config, route: string): Promise<string[]> {
  known(cfg, route);
  const r = await call(cfg, "GET", "/api/members");
  if (r.status !== 200) throw new Error(`the manager answered ${r.status} to GET /api/members`);
  const members = (JSON.parse(r.body) as { members: Array<Record<string, unknown>> }).members;
  return members.filter((m) => m.route !== route && m.status === "enabled" && m.state === "ok").map((m) => String(m.route));
}

export async function memberStatus(cfg: Config, route: string): Promise<MemberReport> {
  const m = await memberJson(cfg, route);
  return { route, url: String(m.url), status: m.status as MemberStatus, state: String(m.state) };
}

/**
 * Sets a member's status. Through the manager the answer also says whether
 * Apache (agent mode) and each peer took it: a miss there is a failure here,
 * or a drain would leave one balancer still sending new clients.
 */
export async function setStatus(cfg: Config, route: string, status: MemberStatus, logger: Logger): Promise<void> {
  known(cfg, route);
  if (!cfg.manager) {
    if (cfg.mode !== "agent" || !cfg.apache) throw new Error('config has no "manager": cannot reach the running proxy-node');
    const member = cfg.balancer.members.find((m) => m.route === route)!;
    const flags = { enabled: { D: 0, N: 0, S: 0, H: 0 }, draining: { N: 1 }, disabled: { D: 1, N: 0 }, standby: { H: 1 }, stopped: { S: 1 } }[status];
    if (!(await new ApacheAgent(cfg.apache, logger).setFlags(member.url, flags as Record<string, 0 | 1>)))
      throw new Error(`Apache did not take ${status} for ${route}`);
    return;
  }
  const r = await call(cfg, "POST", `/api/members/${encodeURIComponent(route)}`, { status });
  if (r.status !== 200) throw new Error(`the manager answered ${r.status} to ${status} ${route}: ${r.body.trim()}`);
  const a = JSON.parse(r.body) as { apache?: { ok: boolean; error?: string }; peers?: Array<{ name: string; ok: boolean; error?: string }> };
  const missed = [
    ...(a.apache && !a.apache.ok ? [`Apache here (${a.apache.error ?? "?"})`] : []),
    ...(a.peers ?? []).filter((p) => !p.ok).map((p) => `${p.name} (${p.error ?? "?"})`),
  ];
  if (missed.length) throw new Error(`${status} ${route} was applied here but not carried to: ${missed.join("; ")}`);
}

/**
 * A number that grows with every request the member is given, and how many it
 * is busy with now: proxy-node's own counters in serve mode, Apache's
 * "Elected" and "Busy" columns in agent mode (proxy-node proxies nothing there).
 */
async function traffic(cfg: Config, route: string, logger: Logger): Promise<{ elected: number; busy: number }> {
  const m = await memberJson(cfg, route);
  if (cfg.mode !== "agent" || !cfg.apache) return { elected: Number(m.requests), busy: Number(m.busy) };
  const html = await new ApacheAgent(cfg.apache, logger).readPage();
  const w = apacheWorkerCounters(html, String(m.url));
  if (!w) throw new Error(`Apache's balancer-manager shows no worker ${String(m.url)}`);
  return w;
}

/** The Elected and Busy columns of one worker on Apache's balancer-manager page (found by their headers). */
export function apacheWorkerCounters(html: string, memberUrl: string): { elected: number; busy: number } | null {
  const text = (s: string): string => s.replace(/<[^>]*>/g, "").trim();
  const cells = (row: string, tag: string): string[] => [...row.matchAll(new RegExp(`<${tag}[^>]*>([\\s\\S]*?)</${tag}>`, "gi"))].map((x) => text(x[1]));
  for (const table of html.split(/<table/i).slice(1)) {
    const rows = table.split(/<tr/i).slice(1);
    const header = rows.length ? cells(rows[0], "th") : [];
    const [u, e, b] = ["Worker URL", "Elected", "Busy"].map((h) => header.indexOf(h));
    if (u < 0 || e < 0 || b < 0) continue;
    for (const row of rows.slice(1)) {
      const c = cells(row, "td");
      if (c.length > Math.max(u, e, b) && sameWorker(c[u], memberUrl)) return { elected: Number(c[e]), busy: Number(c[b]) };
    }
  }
  return null;
}

export interface DrainOptions {
  /** Seconds sticky clients may keep going before the member is disabled. */
  timeoutS: number;
  /** Disable earlier once the member got no request for this long (0: never early). */
  idleS: number;
  say: (line: string) => void;
  logger: Logger;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Draining, then disabled once the member was idle for `idleS` or `timeoutS`
 * passed. With a peer balancer the idle test is skipped: clients may be on the
 * other balancer, whose counters this one does not see.
 */
export async function drainThenDisable(cfg: Config, route: string, o: DrainOptions): Promise<void> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  await setStatus(cfg, route, "draining", o.logger);
  const idleS = cfg.redundancy ? 0 : o.idleS;
  o.say(`${route}: draining (no new clients; sticky clients may go on for up to ${o.timeoutS} s${idleS > 0 ? `, or until ${idleS} s without a request` : ""})`);
  const t0 = Date.now();
  let last = idleS > 0 ? await traffic(cfg, route, o.logger) : null;
  let quietSince = Date.now();
  while (Date.now() - t0 < o.timeoutS * 1000) {
    await sleep(Math.min(500, Math.max(0, o.timeoutS * 1000 - (Date.now() - t0))));
    if (!last) continue;
    const now = await traffic(cfg, route, o.logger);
    if (now.elected !== last.elected || now.busy > 0) quietSince = Date.now();
    last = now;
    if (Date.now() - quietSince >= idleS * 1000) {
      o.say(`${route}: no request for ${idleS} s`);
      break;
    }
  }
  await setStatus(cfg, route, "disabled", o.logger);
  o.say(`${route}: disabled after ${((Date.now() - t0) / 1000).toFixed(1)} s of draining`);
}

/** Enabled, then (waitS > 0) until the running proxy-node reports it taking requests: its health checks passed. */
export async function enableAndWait(cfg: Config, route: string, waitS: number, say: (line: string) => void, logger: Logger): Promise<void> {
  await setStatus(cfg, route, "enabled", logger);
  if (waitS <= 0) return say(`${route}: enabled`);
  const t0 = Date.now();
  let state = "";
  while (Date.now() - t0 < waitS * 1000) {
    state = (await memberStatus(cfg, route)).state;
    if (state === "ok") return say(`${route}: enabled, and the balancer's health check passes (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${route}: enabled, but the balancer's health check did not pass within ${waitS} s (state ${state})`);
}
