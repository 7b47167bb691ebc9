/**
 * Cluster figures (a benchmark, never a timed test): cold start to the first good
 * response through the balancer, a no-change re-run with and without the refresh
 * that reads every host back, the repair of a web server rebuilt from nothing,
 * failover, and teardown, on a throwaway stack made from the dev stack file.
 */
import { execFileSync } from "node:child_process";
import { containerName } from "../scripts/local-hosts";
import { checkFailover } from "../test/cluster/checks";
import { request } from "../test/support/http-client";
import { bringUp, tearDown, Variant, variantOverrides } from "../test/support/local-cluster";
import { upWithSummary } from "../scripts/stack";

export async function clusterBench(engine: "apache" | "proxy-node" = "apache", webCount = 2): Promise<Array<Record<string, string | number>>> {
  const v: Variant = { stack: `bench-${engine}-${webCount}`, portOffset: 1500, subnet: 67, engine, webCount };
  const name = `${engine}, ${webCount} web`;
  await tearDown(v).catch(() => undefined);
  const rows: Array<Record<string, string | number>> = [];
  const t0 = Date.now();
  try {
    const c = await bringUp(v);
    for (;;) {
      const r = await request(`${c.balancerUrl}/`).catch(() => undefined);
      if (r?.status === 200) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    rows.push({ figure: `${name}: cold start to first good response through the balancer`, value: ((Date.now() - t0) / 1000).toFixed(1), unit: "s" });
    const rerun = async (what: string, opts: { refresh: boolean }): Promise<void> => {
      const t = Date.now();
      const r = await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: () => undefined, skipPayloadCheck: true, ...opts });
      rows.push({ figure: `${name}: ${what} (${JSON.stringify(r.summary.resourceChanges)})`, value: ((Date.now() - t) / 1000).toFixed(1), unit: "s" });
    };
    await rerun("no-change up with refresh (the default)", { refresh: true });
    await rerun("no-change up --no-refresh", { refresh: false });
    execFileSync("docker", ["rm", "-f", containerName(c.model, c.model.web[c.model.web.length - 1].host)]);
    await rerun("up that repairs one web server rebuilt from nothing", { refresh: true });
    const f = await checkFailover(c);
    rows.push({ figure: `${name}: failover, failed of ${f.requests} requests`, value: f.failed, unit: "requests" });
    rows.push({ figure: `${name}: stopped server serves its clients again after`, value: f.backAfterSeconds.toFixed(1), unit: "s" });
  } finally {
    const t2 = Date.now();
    await tearDown(v);
    rows.push({ figure: `${name}: teardown (pulumi destroy + hosts)`, value: ((Date.now() - t2) / 1000).toFixed(1), unit: "s" });
  }
  return rows;
}

if (require.main === module) {
  clusterBench(process.argv[2] === "proxy-node" ? "proxy-node" : "apache", Number(process.argv[3] ?? 2)).then(
    (rows) => console.table(rows),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
