// Benchmark (not a test): render every host's payload for a 50-web-server stack,
// as `pulumi up` does once per run (buildPayloads on a model from validateConfig),
// repeated, with the median time per full render.
//
//   npx ts-node bench/render.ts          BENCH_WEB=50 BENCH_RENDER_REPEATS=20 to adjust
import { performance } from "node:perf_hooks";
import { validateConfig } from "../infra/config/validate";
import { buildPayloads } from "../infra/payload/index";
import { HostPayload } from "../infra/payload/types";
import { ARTIFACTS, PROJECT, SECRETS, sshValues } from "../test/support/cluster-configs";

const WEB = Number(process.env.BENCH_WEB ?? 50);
const REPEATS = Number(process.env.BENCH_RENDER_REPEATS ?? 20);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export async function renderBench(): Promise<Array<Record<string, string | number>>> {
  const rows: Array<Record<string, string | number>> = [];
  const variants = [
    { engine: "apache" as const, stickysession: "BALANCEID", app: "probe" as const },
    { engine: "proxy-node" as const, stickysession: "JSESSIONID|jsessionid", app: "probe" as const },
    { engine: "apache" as const, stickysession: "BALANCEID", app: "drupal" as const },
  ];
  for (const v of variants) {
    // Addresses of the test config are 10.0.0.(11+i): 50 web servers fit.
    const values = sshValues({ webCount: WEB, engine: v.engine, stickysession: v.stickysession, app: v.app });
    const model = validateConfig({ project: PROJECT, stack: "bench" }, values);
    const t0 = performance.now();
    let payloads: HostPayload[] = buildPayloads(model, SECRETS, ARTIFACTS);
    const first = performance.now() - t0;
    // Warm-up (JIT), not timed.
    for (let i = 0; i < 3; i++) buildPayloads(model, SECRETS, ARTIFACTS);
    const times: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      const t0 = performance.now();
      payloads = buildPayloads(model, SECRETS, ARTIFACTS);
      times.push(performance.now() - t0);
    }
    const files = payloads.reduce((n, p) => n + p.files.length, 0);
    const bytes = payloads.reduce((n, p) => n + p.files.reduce((b, f) => b + Buffer.byteLength(f.content), 0), 0);
    rows.push({
      config: `${WEB} web, ${v.engine}, ${v.stickysession}, ${v.app}`,
      hosts: payloads.length,
      files,
      "total bytes": bytes,
      // The first render of the process also compiles the templates.
      "first ms": round(first),
      "median ms": round(median(times)),
      "min ms": round(Math.min(...times)),
      "max ms": round(Math.max(...times)),
      repeats: REPEATS,
    });
  }
  return rows;
}

if (require.main === module) {
  renderBench().then(
    (rows) => {
      console.log(`render benchmark: all hosts' payloads, ${REPEATS} renders each after 3 untimed warm-ups (first = the cold render)`);
      console.table(rows);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
