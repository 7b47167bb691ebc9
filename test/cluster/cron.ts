/**
 * Drupal's cron on a real cluster (issue 11): the balancer runs it once per
 * period for the whole cluster, through its own listener, so with N web servers
 * there is still one run a period, and with one of them gone the others run it.
 * The probe's cron endpoint records each run in MariaDB (probe_cron_runs), with
 * the database's clock, so runs are counted where they happened.
 *
 * The suites' clusters start with the default period (300 s), and these checks
 * switch theirs to 10 s: a run is a request through the balancer, which moves
 * the byrequests rotation, so a run every 10 s during the earlier checks would
 * make their even-spread counts flaky.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { CRON_KEY_HEADER, CRON_SCRIPT } from "../../infra/payload/cron";
import { containerName } from "../../scripts/local-hosts";
import { upWithSummary } from "../../scripts/stack";
import { recordFigure } from "../support/figures";
import { request } from "../support/http-client";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { pinnedClientReaches } from "./checks";

/** The test stacks' period: short, and still at the settings' floor. */
export const TEST_PERIOD_S = 10;
/** Periods counted in the main check. */
const PERIODS = 5;

interface Run {
  id: number;
  /** When the web server recorded it, by the database's clock (seconds, ms precision). */
  at: number;
  server: string;
  client: string;
}

function runs(c: RunningCluster): Run[] {
  const db = c.model.data.database;
  const r = onHost(c.model, "data", `mysql -N -B -e "SELECT id, UNIX_TIMESTAMP(ran_at), server, client FROM ${db}.probe_cron_runs ORDER BY id"`);
  assert.equal(r.code, 0, `reading probe_cron_runs: ${r.out}`);
  return r.out
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [id, at, server, client] = line.split("\t");
      return { id: Number(id), at: Number(at), server, client };
    });
}

/** The database's clock: the one the runs are recorded by. */
function dbNow(c: RunningCluster): number {
  const r = onHost(c.model, "data", `mysql -N -B -e "SELECT UNIX_TIMESTAMP(NOW(3))"`);
  assert.equal(r.code, 0, r.out);
  return Number(r.out);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The first run recorded after `after`, waiting at most `timeoutS`. */
async function nextRun(c: RunningCluster, after: number, timeoutS: number, why: string): Promise<Run> {
  const t0 = Date.now();
  for (;;) {
    const r = runs(c).find((x) => x.at > after);
    if (r) return r;
    assert.ok(Date.now() - t0 < timeoutS * 1000, `no cron run within ${timeoutS} s ${why}; cron log on the balancer:\n${cronLog(c)}`);
    await sleep(250);
  }
}

/** Waits until the database's clock has passed `t`. */
async function until(c: RunningCluster, t: number): Promise<void> {
  const ahead = t - dbNow(c);
  if (ahead > 0) await sleep(ahead * 1000);
  while (dbNow(c) <= t) await sleep(200);
}

function cronLog(c: RunningCluster): string {
  const systemd = c.model.localHosts?.init === "systemd";
  return onHost(c.model, "balancer", systemd ? "journalctl -u drupal-cluster-cron.service -n 20 --no-pager" : "tail -n 20 /var/log/drupal-cluster-cron.log")
    .out;
}

/**
 * The runs after `r0` for `periods` periods, one in each period's slot: run k
 * (k = 0 is r0) between k - 1/2 and k + 1/2 periods after r0. Slots half a
 * period wide on each side leave room for a run's own latency (a connect
 * deadline on a member that is gone), yet a second run in any period, or a
 * missing one, falls out. Returns the runs and their offsets from their slots.
 */
function slotted(all: Run[], r0: Run, periods: number, what: string): { runs: Run[]; offsets: number[] } {
  const p = TEST_PERIOD_S;
  const inWindow = all.filter((r) => r.at > r0.at - p / 2 && r.at <= r0.at + (periods + 0.5) * p);
  const show = (): string => inWindow.map((r) => `${(r.at - r0.at).toFixed(2)} s ${r.server}`).join(", ");
  assert.equal(
    inWindow.length,
    periods + 1,
    `${what}: ${inWindow.length - 1} runs in ${periods} periods of ${p} s after the run at 0 s, not ${periods}: ${show()}`,
  );
  const offsets = inWindow.map((r, k) => r.at - r0.at - k * p);
  offsets.forEach((o, k) => assert.ok(Math.abs(o) < p / 2, `${what}: run ${k} is ${o.toFixed(2)} s off its period's slot: ${show()}`));
  return { runs: inWindow.slice(1), offsets };
}

function docker(args: string[]): void {
  execFileSync("docker", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * Registers the cron checks on a running suite's cluster. Call it before a
 * suite's checks that destroy the cluster: these need it whole, and leave it so.
 */
export function registerCronChecks(v: Variant, get: () => RunningCluster, log: (s: string) => void): void {
  const webCount = v.webCount ?? 2;
  const p = TEST_PERIOD_S;

  it(`cron: the balancer's ${v.init === "systemd" ? "timer (enabled, back after the reboot)" : "loop"} runs it; with a period of ${p} s, exactly ${PERIODS} runs in ${PERIODS} periods for ${webCount} web servers, one a period; a wrong or missing key gets 403 and records nothing`, async function () {
    this.timeout(5 * 60_000);
    const c = get();
    const balancer = c.model.balancer.host.name;
    // Before the change: on ci-three every host has rebooted by now, so this is the timer systemd started by itself.
    assert.equal(onHost(c.model, balancer, `${CRON_SCRIPT} status`).code, 0, `cron is not running on the balancer:\n${cronLog(c)}`);
    if (v.init === "systemd") {
      assert.equal(onHost(c.model, balancer, "systemctl is-enabled drupal-cluster-cron.timer").out, "enabled");
    }

    await upWithSummary(v.stack, { baseStack: "dev", overrides: cronOverrides(v), onOutput: log, refresh: false, skipPayloadCheck: true });
    assert.match(
      onHost(c.model, balancer, `grep -h -e '^PERIOD=' -e '^OnUnitActiveSec=' ${CRON_SCRIPT} /etc/systemd/system/drupal-cluster-cron.timer`).out,
      new RegExp(`PERIOD=${p}\\n?.*OnUnitActiveSec=${p}s`, "s"),
    );
    const r0 = await nextRun(c, dbNow(c), 2 * p + 15, `after the period became ${p} s`);

    // Right after a run, half a period before the next is due: a request without
    // the key, or with a wrong one, must be refused and leave no run behind.
    const url = `${c.balancerUrl}/cron.php`;
    const refused: Array<[string, Record<string, string>]> = [
      ["no key", {}],
      ["an empty key", { [CRON_KEY_HEADER]: "" }],
      ["a wrong key", { [CRON_KEY_HEADER]: "not-the-cron-key-0123456789" }],
    ];
    for (const [what, headers] of refused) {
      const r = await request(url, { method: "POST", headers });
      assert.equal(r.status, 403, `POST ${url} with ${what} answered ${r.status}: ${r.body}`);
    }

    await until(c, r0.at + (PERIODS + 0.5) * p);
    const { runs: counted, offsets } = slotted(runs(c), r0, PERIODS, `${webCount} web servers`);
    const servers = [...counted.map((r) => r.server)].sort();
    // Through the balancer: every run came from the balancer's address.
    assert.deepEqual([...new Set(counted.map((r) => r.client))], [c.model.balancer.host.clusterAddress], "a run did not come through the balancer");
    recordFigure(`${v.stack}: cron, runs in ${PERIODS} periods of ${p} s with ${webCount} web servers`, counted.length);
    recordFigure(`${v.stack}: cron, largest offset of a run from its period's slot, s`, Math.max(...offsets.map(Math.abs)));
    log(`cron on ${v.stack}: ${counted.length} runs, by ${servers.join(" ")}; offsets ${offsets.map((o) => o.toFixed(2)).join(" ")} s\n`);
  });

  it(`cron: with a web server killed (docker kill), the others run it, once a period${v.init === "systemd" ? "" : "; the balancer restarted starts its loop again (boot.d)"}`, async function () {
    this.timeout(5 * 60_000);
    const c = get();
    const victim = c.model.web[0];
    const r0 = await nextRun(c, dbNow(c), 2 * p + 15, "before the kill");
    docker(["kill", containerName(c.model, victim.host)]);
    try {
      await until(c, r0.at + 2.5 * p);
      const { runs: counted, offsets } = slotted(runs(c), r0, 2, `${victim.host.name} killed`);
      assert.deepEqual(
        counted.filter((r) => r.server === victim.host.name),
        [],
        `a run was recorded by ${victim.host.name}, which was killed`,
      );
      recordFigure(`${v.stack}: cron with ${victim.host.name} killed, runs in 2 periods of ${p} s`, counted.length);
      recordFigure(`${v.stack}: cron with ${victim.host.name} killed, largest offset from its slot, s`, Math.max(...offsets.map(Math.abs)));
    } finally {
      docker(["start", containerName(c.model, victim.host)]);
    }
    if (v.init !== "systemd") {
      // Hosts without systemd start their services from boot.d when their container starts.
      docker(["restart", "--time", "10", containerName(c.model, c.model.balancer.host)]);
      // Taken once the container runs again: a run of the former loop cannot be recorded after it.
      const restarted = dbNow(c);
      const r = await nextRun(c, restarted, p + 30, "after the balancer restarted");
      assert.ok(r.at - restarted <= p + 30, `the first run after the balancer restarted came after ${(r.at - restarted).toFixed(1)} s`);
      assert.equal(onHost(c.model, c.model.balancer.host.name, `${CRON_SCRIPT} status`).code, 0);
    }
    // The rest of the suite needs every web server back.
    const t0 = Date.now();
    let back = false;
    while (!back && Date.now() - t0 < (c.model.balancer.retry + 60) * 1000) {
      back = (await pinnedClientReaches(c, victim.route)) === victim.host.name;
      if (!back) await sleep(250);
    }
    assert.ok(back, `${victim.host.name} did not serve its clients again after docker start`);
  });
}

/** The suite's settings with the test period. */
export function cronOverrides(v: Variant): Record<string, unknown> {
  return { ...variantOverrides(v), cron: { periodSeconds: TEST_PERIOD_S } };
}
