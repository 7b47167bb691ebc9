// Before a reload that changes the member list (the cluster program adds or
// removes a web server): `admit` health-checks, from this balancer, every
// member the new config adds, so a member that cannot serve is never named in
// a running config; `retire` drains every member the running proxy-node has and
// the new config no longer has, so the reload that drops it drops an idle one.
// The running process is asked through its manager (either mode: in agent mode
// its manager writes Apache's flags and carries the change to a peer balancer).
import type { Config, MemberConfig } from "./config";
import { ApacheAgent, sameWorker } from "./agent";
import { apacheWorkerCounters } from "./member-control";
import { probe } from "./health";
import { Member } from "./members";
import type { Logger } from "./log";
import { managerCall } from "./manager-client";

/** A member as the running proxy-node's manager lists it. */
export interface RunningMember {
  route: string;
  url: string;
  status: string;
}

/** A count that grows with every request a member is given, and how many it is busy with now. */
export interface Traffic {
  elected: number;
  busy: number;
}

/** What admit and retire need from the world; the command line gives the real ones, tests their own. */
export interface MemberChangeDeps {
  /** The running proxy-node's members, or a reason it cannot be asked (not running, another token). */
  running(): Promise<RunningMember[] | string>;
  drain(m: RunningMember): Promise<void>;
  /** Null: the member no longer serves anything (engine apache: Apache already dropped it). */
  traffic(m: RunningMember): Promise<Traffic | null>;
  probe(m: MemberConfig): Promise<{ ok: boolean; reason: string }>;
  sleep(ms: number): Promise<void>;
  now(): number;
  say(line: string): void;
}

/** A member the new config adds that did not pass its health check in time: the reload must not happen. */
export class NotAdmitted extends Error {}

function added(cfg: Config, running: readonly RunningMember[]): MemberConfig[] {
  return cfg.balancer.members.filter((m) => !running.some((r) => sameWorker(r.url, m.url)));
}

function removed(cfg: Config, running: readonly RunningMember[]): RunningMember[] {
  return running.filter((r) => !cfg.balancer.members.some((m) => sameWorker(r.url, m.url)));
}

/**
 * Every member the new config adds answers the config's health check `rise`
 * times in a row within `timeoutS`, or NotAdmitted names the member, the check
 * and its last answer. A proxy-node that cannot be asked admits nothing new
 * (said on stdout): there is no running list to compare with.
 */
export async function admit(cfg: Config, deps: MemberChangeDeps, timeoutS: number): Promise<void> {
  const running = await deps.running();
  if (typeof running === "string") return deps.say(`admit: skipped, the running proxy-node cannot be asked (${running})`);
  const fresh = added(cfg, running);
  const hc = cfg.balancer.healthCheck;
  if (fresh.length === 0) return;
  if (!hc) return deps.say(`admit: ${fresh.map((m) => m.route).join(", ")} added without a check (the config has no balancer.healthCheck)`);
  const t0 = deps.now();
  await Promise.all(
    fresh.map(async (m) => {
      let inARow = 0;
      for (;;) {
        const r = await deps.probe(m);
        inARow = r.ok ? inARow + 1 : 0;
        if (inARow >= hc.rise) {
          deps.say(`admit: ${m.route} (${m.url}) passed GET ${hc.path} ${hc.rise} times in a row after ${((deps.now() - t0) / 1000).toFixed(1)} s`);
          return;
        }
        if (deps.now() - t0 >= timeoutS * 1000) {
          throw new NotAdmitted(
            `member ${m.route} (${m.url}) did not pass its health check GET ${hc.path} (expects ${hc.expect}) ${hc.rise} times in a row within ${timeoutS} s; last: ${r.reason}. ` +
              "The running balancer keeps its members; nothing was reloaded.",
          );
        }
        await deps.sleep(1000);
      }
    }),
  );
}

export interface RetireOptions {
  /** The longest a removed member's clients may keep going before the reload drops it. */
  timeoutS: number;
  /** Done early once the member had no request and none in flight for this long. */
  idleS: number;
}

/**
 * Each member the running proxy-node has and the new config does not is set
 * draining (no new clients; its sticky clients go on), then left until it had
 * no request for `idleS` or `timeoutS` passed. The reload then drops it and its
 * sticky clients go to the others. Never fails the change: a member that
 * cannot be drained is said on stdout and dropped all the same.
 */
export async function retire(cfg: Config, deps: MemberChangeDeps, o: RetireOptions): Promise<void> {
  const running = await deps.running();
  if (typeof running === "string") return deps.say(`retire: skipped, the running proxy-node cannot be asked (${running})`);
  const leaving = removed(cfg, running);
  // With a peer balancer its clients may be on the other one, whose counters this one does not see: no early end.
  const idleS = cfg.redundancy ? 0 : o.idleS;
  await Promise.all(
    leaving.map(async (m) => {
      const t0 = deps.now();
      try {
        await deps.drain(m);
      } catch (e) {
        deps.say(`retire: ${m.route} (${m.url}) could not be set draining (${(e as Error).message}); dropped without draining`);
        return;
      }
      let last: Traffic | null;
      let quietSince = deps.now();
      const quiet = (): boolean => idleS > 0 && deps.now() - quietSince >= idleS * 1000;
      try {
        last = await deps.traffic(m);
        while (last !== null && deps.now() - t0 < o.timeoutS * 1000) {
          await deps.sleep(500);
          const now = await deps.traffic(m);
          if (now === null || now.elected !== last.elected || now.busy > 0) quietSince = deps.now();
          last = now;
          if (quiet()) break;
        }
      } catch (e) {
        deps.say(
          `retire: ${m.route} (${m.url}): its traffic cannot be read (${(e as Error).message}); dropped after ${((deps.now() - t0) / 1000).toFixed(1)} s of draining`,
        );
        return;
      }
      const took = ((deps.now() - t0) / 1000).toFixed(1);
      const why = last === null ? "no longer served here" : quiet() ? `no request for ${idleS} s` : `timeout ${o.timeoutS} s`;
      deps.say(`retire: ${m.route} (${m.url}) drained for ${took} s (${why}); the reload drops it`);
    }),
  );
}

// ---- the real world: the running proxy-node's manager, Apache's page, the health check ----

type ManagerMember = RunningMember & { requests?: unknown; busy?: unknown };

async function managerMembers(cfg: Config): Promise<ManagerMember[] | string> {
  try {
    const r = await managerCall(cfg, "GET", "/api/members");
    if (r.status !== 200) return `its manager answered ${r.status}`;
    return (JSON.parse(r.body) as { members: ManagerMember[] }).members;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The deps of the command line: the manager of the proxy-node running on this host, Apache's page in agent mode. */
export function liveDeps(cfg: Config, logger: Logger): MemberChangeDeps {
  const hc = cfg.balancer.healthCheck;
  return {
    running: () => managerMembers(cfg),
    async drain(m) {
      const r = await managerCall(cfg, "POST", `/api/members/${encodeURIComponent(m.route)}`, { status: "draining" });
      if (r.status !== 200) throw new Error(`the manager answered ${r.status}: ${r.body.trim()}`);
    },
    async traffic(m) {
      if (cfg.mode === "agent" && cfg.apache) return apacheWorkerCounters(await new ApacheAgent(cfg.apache, logger).readPage(), m.url);
      const list = await managerMembers(cfg);
      const found = typeof list === "string" ? undefined : list.find((x) => sameWorker(x.url, m.url));
      return found ? { elected: Number(found.requests), busy: Number(found.busy) } : null;
    },
    probe: (m) => (hc ? probe(new Member(m), hc) : Promise.resolve({ ok: true, reason: "no health check" })),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    say: (line) => void process.stdout.write(`${line}\n`),
  };
}
