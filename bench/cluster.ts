/**
 * Cluster figures (a benchmark, never a timed test): cold start to the first good
 * response through the balancer, a no-change re-run, failover, and teardown, on a
 * throwaway stack made from the dev stack file.
 */
import { checkFailover } from "../test/cluster/checks";
import { request } from "../test/support/http-client";
import { bringUp, tearDown, Variant, variantOverrides } from "../test/support/local-cluster";
import { upWithSummary } from "../scripts/stack";

export async function clusterBench(engine: "apache" | "proxy-node" = "apache"): Promise<Array<Record<string, string | number>>> {
  const v: Variant = { stack: `bench-${engine}`, portOffset: 1300, subnet: 64, engine };
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
    rows.push({ figure: `${engine}: cold start to first good response through the balancer`, value: ((Date.now() - t0) / 1000).toFixed(1), unit: "s" });
    const t1 = Date.now();
    const again = await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: () => undefined });
    rows.push({ figure: `${engine}: no-change pulumi up (${JSON.stringify(again.summary.resourceChanges)})`, value: ((Date.now() - t1) / 1000).toFixed(1), unit: "s" });
    const f = await checkFailover(c);
    rows.push({ figure: `${engine}: failover, failed of ${f.requests} requests`, value: f.failed, unit: "requests" });
    rows.push({ figure: `${engine}: stopped server serves its clients again after`, value: f.backAfterSeconds.toFixed(1), unit: "s" });
  } finally {
    const t2 = Date.now();
    await tearDown(v);
    rows.push({ figure: `${engine}: teardown (pulumi destroy + hosts)`, value: ((Date.now() - t2) / 1000).toFixed(1), unit: "s" });
  }
  return rows;
}

if (require.main === module) {
  clusterBench(process.argv[2] === "proxy-node" ? "proxy-node" : "apache").then(
    (rows) => console.table(rows),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
