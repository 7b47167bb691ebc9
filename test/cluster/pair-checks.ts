/**
 * The balancer pair's scenarios (issue 12), registered once per engine on one
 * pair of balancers: a killed active balancer, its return, an engine stopped
 * on a host that stays up, and a member disabled through one manager.
 */
import * as assert from "node:assert/strict";
import { Engine } from "../../infra/model/types";
import { openStack, upWithSummary } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { checkSessionsInDatabase, checkSpread, checkSticky } from "./checks";
import { request } from "../support/http-client";
import {
  balancerContainer,
  docker,
  failoverBoundS,
  holders,
  newClientsThrough,
  pairHosts,
  PairReport,
  pinnedThroughEach,
  settledHolder,
  sleep,
  startEngine,
  stopEngine,
  underPairLoad,
} from "./pair";
import { apacheManager, proxyNodeManager } from "./managers";
import { assertVerdicts, targetOf, verifyFrom } from "./verify";

function figures(name: string, r: PairReport): void {
  recordFigure(`${name}: requests sent`, r.sent);
  recordFigure(`${name}: requests failed`, r.failed);
  recordFigure(`${name}: requests failed that were sent after the loss`, r.failedAfterFault);
  recordFigure(`${name}: gap (last answer before, first after), s`, r.gapS);
  recordFigure(`${name}: longest request, s`, r.longestMs / 1000);
}

/** The running cluster as this engine's checks see it (the pair switches engine halfway). */
function withEngine(c: RunningCluster, engine: Engine): RunningCluster {
  return { ...c, model: { ...c.model, balancer: { ...c.model.balancer, engine } } };
}

export function registerPairChecks(v: Variant, getCluster: () => RunningCluster, engine: Engine, log: (s: string) => void): void {
  const get = (): RunningCluster => withEngine(getCluster(), engine);
  const token = async (): Promise<string> => {
    const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), skipPayloadCheck: true });
    return (await stack.getConfig("drupal-cluster:managerToken")).value;
  };

  it(`[${engine}] one balancer holds the virtual address; through it new clients spread, pinned ones stick, sessions live in MariaDB; verify passes (balancer pair included); both balancers route a pinned client alike`, async () => {
    const c = get();
    assert.equal(holders(c).length, 1, `the address is held by [${holders(c).join(", ")}]`);
    await checkSpread(c, 6);
    await checkSticky(c, 20);
    await checkSessionsInDatabase(c);
    // verify sees one balancer holding the address and both agreeing on every member.
    assertVerdicts(await verifyFrom(c, await targetOf(c)), { "balancer pair": "PASS" });
    for (const w of c.model.web) {
      const each = await pinnedThroughEach(c, w.route);
      assert.deepEqual(
        Object.values(each),
        pairHosts(c).map(() => w.host.name),
        `a client pinned to ${w.route} went elsewhere through one balancer: ${JSON.stringify(each)}`,
      );
    }
  });

  it(`[${engine}] a second pulumi up with no change reports no changes (keepalived reads as running on both)`, async () => {
    const r = await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, skipPayloadCheck: true });
    const changed = Object.entries(r.summary.resourceChanges ?? {}).filter(([op, n]) => op !== "same" && (n ?? 0) > 0);
    assert.deepEqual(changed, [], `a no-change up changed: ${JSON.stringify(r.summary.resourceChanges)}`);
    assert.equal((await settledHolder(get())).length > 0, true);
  });

  it(`[${engine}] the active balancer's container is killed under load: the address moves within VRRP's bound, nothing sent after the loss fails, pinned clients keep their web server`, async () => {
    const c = get();
    let killed = "";
    const r = await underPairLoad(c, (holder) => {
      killed = holder;
      docker(["kill", balancerContainer(c, killed)]);
    });
    figures(`ci-pair ${engine}: active balancer killed`, r);
    assert.notEqual(r.holderAfter, killed, "the address stayed with the killed balancer");
    assert.equal(r.failedAfterFault, 0, `requests sent after the loss failed:\n${r.failures.join("\n")}`);
    assert.equal(r.pinnedMoved, 0, "pinned clients were moved to another web server");
    recordFigure(`ci-pair ${engine}: active balancer killed: the address moved after, s`, r.movedAfterS);
    assert.ok(r.gapS <= failoverBoundS(c), `the gap was ${r.gapS} s, over VRRP's bound of ${failoverBoundS(c).toFixed(1)} s`);
  });

  it(`[${engine}] the killed balancer comes back by itself as backup: keepalived runs on it again, the address stays where it is, no request fails`, async () => {
    const c = get();
    const down = pairHosts(c).find((h) => !holders(c).includes(h.name))!;
    const r = await underPairLoad(c, async () => {
      docker(["start", balancerContainer(c, down.name)]);
      // Back means serving again (its engine answers its own check) with keepalived running.
      const t0 = Date.now();
      while (onHost(c.model, down.name, "/usr/local/sbin/drupal-cluster-engine-check && pidof keepalived").code !== 0) {
        if (Date.now() - t0 > 90000) throw new Error(`${down.name} did not serve again with keepalived within 90 s of its start`);
        await sleep(500);
      }
    });
    figures(`ci-pair ${engine}: killed balancer returns`, r);
    assert.equal(r.failed, 0, `requests failed while the balancer came back:\n${r.failures.join("\n")}`);
    assert.equal(r.holderAfter, r.holderBefore, "the returning balancer took the address back (the default is nopreempt)");
  });

  it(`[${engine}] the active balancer's engine stops while its host stays up: its check gives the address away, and nothing sent after the move fails; back, it takes the address when the other's engine stops`, async () => {
    const c = get();
    const stopOn = async (which: string): Promise<PairReport> => {
      const r = await underPairLoad(c, (holder) => {
        assert.equal(holder, which, `expected ${which} to hold the address`);
        assert.equal(onHost(c.model, holder, stopEngine(c)).code, 0);
      });
      figures(`ci-pair ${engine}: ${which}'s engine stopped`, r);
      recordFigure(`ci-pair ${engine}: ${which}'s engine stopped: the address moved after, s`, r.movedAfterS);
      assert.notEqual(r.holderAfter, which, "the address stayed on the balancer whose engine was stopped");
      // Until the check has failed twice the stopped engine's port refuses: those may fail, none after.
      assert.equal(r.failedAfterMove, 0, `requests sent after the address moved failed:\n${r.failures.join("\n")}`);
      assert.equal(onHost(c.model, which, startEngine(c)).code, 0);
      // Its check passes twice before keepalived counts it in again.
      await sleep(3000);
      return r;
    };
    const first = await settledHolder(c);
    const r = await stopOn(first);
    // The balancer whose engine came back is a backup again: it takes the address when the other one's engine stops.
    await stopOn(r.holderAfter);
    assert.equal(await settledHolder(c), first);
  });

  it(`[${engine}] a member disabled through one balancer's manager gets no new clients through either balancer; each manager shows whether its balancer holds the address`, async () => {
    const c = get();
    const t = await token();
    const [first, second] = pairHosts(c);
    const lb2 = c.model.web[1];
    const r = c.model.balancer.redundancy!;
    // The manager of the balancer that does not hold the address: the change must reach the one that does.
    const holder = await settledHolder(c);
    const via = holder === first.name ? second : first;
    const ops =
      engine === "apache"
        ? apacheManager({ ...c, managerUrl: `${via.url}/balancer-manager` })
        : proxyNodeManager(
            { ...c, model: { ...c.model, balancer: { ...c.model.balancer, managerUrl: via === first ? c.model.balancer.managerUrl : r.peerManagerUrl } } },
            t,
          );
    await ops.disable(lb2.route);
    try {
      // Carried across within a few seconds (the agent looks at Apache's page every second or two).
      const t0 = Date.now();
      let counts: Array<Record<string, number>> = [];
      while (Date.now() - t0 < 15000) {
        counts = await Promise.all(pairHosts(c).map((h) => newClientsThrough(h.url!, 6)));
        if (counts.every((n) => !n[lb2.host.name])) break;
        await sleep(1000);
      }
      assert.ok(
        counts.every((n) => !n[lb2.host.name]),
        `${lb2.host.name}, disabled through ${via.name}'s manager, still got new clients: ${JSON.stringify(Object.fromEntries(pairHosts(c).map((h, i) => [h.name, counts[i]])))}`,
      );
      recordFigure(`ci-pair ${engine}: a disable through one manager reached both balancers after, s`, (Date.now() - t0) / 1000);
      for (const [h, url] of [
        [first, c.model.balancer.managerUrl],
        [second, r.peerManagerUrl],
      ] as const) {
        const page = await request(`${url}/api/members`, { headers: { authorization: `Bearer ${t}` }, timeoutMs: 5000 });
        const red = (JSON.parse(page.body) as { redundancy?: { holdsAddress: boolean; virtualAddress: string } }).redundancy;
        assert.ok(red, `${h.name}'s manager does not say who holds the address`);
        assert.equal(red.virtualAddress, r.virtualAddress);
        assert.equal(red.holdsAddress, h.name === holder, `${h.name}'s manager says holdsAddress ${red.holdsAddress}, but ${holder} holds it`);
      }
    } finally {
      await ops.enable(lb2.route);
    }
  });
}
