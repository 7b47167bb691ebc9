/**
 * Changes without failed requests (issue 16): a pulumi up while clients keep
 * coming, each request timed. Today: a balancer-only change, which Apache takes
 * with a graceful reload and proxy-node with SIGHUP (its process is kept).
 */
import * as assert from "node:assert/strict";
import { upWithSummary } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { probePage, request } from "../support/http-client";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";

export interface LoadReport {
  sent: number;
  failed: number;
  failures: string[];
  /** Answers to the pinned client from another web server (allowed with pinnedMayMove). */
  moved: number;
}

/**
 * Runs `work` while a pinned and a new client each send a request every 50 ms
 * through the balancer. pinnedMayMove: the pinned client's web server is taken
 * out on purpose (a rollout), so another one answering it is no failure.
 */
export async function underSteadyLoad(c: RunningCluster, work: () => Promise<void>, opts: { pinnedMayMove?: boolean } = {}): Promise<LoadReport> {
  let running = true;
  const failures: string[] = [];
  let sent = 0;
  let moved = 0;
  const w = c.model.web[0];
  const loop = async (pinned: boolean): Promise<void> => {
    while (running) {
      const start = Date.now();
      sent++;
      try {
        const r = await request(`${c.balancerUrl}/`, { headers: pinned ? { cookie: `${c.model.sticky.cookieName}=${w.stickyValue}` } : {}, timeoutMs: 30000 });
        if (r.status !== 200) failures.push(`${new Date(start).toISOString()}: status ${r.status}`);
        else if (pinned && probePage(r).server !== w.host.name) {
          moved++;
          if (!opts.pinnedMayMove) failures.push(`${new Date(start).toISOString()}: pinned client served by ${probePage(r).server}`);
        }
      } catch (e) {
        failures.push(`${new Date(start).toISOString()} +${Date.now() - start} ms: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const loops = [loop(true), loop(false)];
  await new Promise((r) => setTimeout(r, 500));
  try {
    await work();
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    running = false;
    await Promise.all(loops);
  }
  return { sent, failed: failures.length, failures, moved };
}

/**
 * balancer.retry changed and then set back, each by a pulumi up under load:
 * no request fails, and with proxy-node the process that serves is the same
 * one afterwards (SIGHUP, not a restart).
 */
export function registerBalancerChangeUnderLoad(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  it("a balancer-only change (retry) under steady load, and back: no failed request; proxy-node takes it by SIGHUP, in the same process", async () => {
    const c = get();
    // The process serving: systemd's main pid, or the supervisor's pidfile.
    const pid = (): string =>
      onHost(
        c.model,
        c.model.balancer.host.name,
        "if [ -d /run/systemd/system ]; then systemctl show -p MainPID --value proxy-node; else cat /run/proxy-node.pid; fi",
      ).out;
    const before = pid();
    assert.match(before, /^[1-9]\d*$/, `no proxy-node process on the balancer (${before})`);
    const changed = variantOverrides(v);
    (changed.balancer as Record<string, unknown>).retry = 7;
    const r = await underSteadyLoad(c, async () => {
      await upWithSummary(v.stack, { baseStack: "dev", overrides: changed, onOutput: log, skipPayloadCheck: true });
      await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, skipPayloadCheck: true });
    });
    recordFigure(`${v.stack}: balancer-only change and back under load, requests sent`, r.sent);
    recordFigure(`${v.stack}: balancer-only change and back under load, requests failed`, r.failed);
    assert.equal(r.failed, 0, `requests failed during a balancer-only change:\n${r.failures.join("\n")}`);
    assert.equal(pid(), before, "proxy-node was restarted for a change its SIGHUP reload takes");
  });
}
