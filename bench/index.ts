/**
 * `npm run bench`: every benchmark, each printing a table. Speed is compared by
 * ratios measured in the same run, never asserted: these machines are noisy.
 *   npm run bench                 all
 *   npm run bench -- render       one of: render, cluster, proxy-node, tls
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { clusterBench } from "./cluster";
import { renderBench } from "./render";

async function main(which: string[]): Promise<void> {
  const all = which.length === 0;
  if (all || which.includes("render")) {
    console.log("\n## Rendering every host's payload");
    console.table(await renderBench());
  }
  if (all || which.includes("cluster")) {
    console.log("\n## Cluster figures (dev path: local Debian hosts, real pulumi up over SSH)");
    console.table([...(await clusterBench("apache", 2)), ...(await clusterBench("apache", 5))]);
  }
  if (all || which.includes("proxy-node")) {
    console.log("\n## proxy-node beside Apache, HAProxy and nginx (wrk on loopback)");
    const r = spawnSync(process.execPath, [require.resolve("ts-node/dist/bin"), path.join(__dirname, "proxy-node.ts")], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`bench/proxy-node.ts exited ${r.status}`);
  }
  if (all || which.includes("tls")) {
    console.log("\n## HTTPS at the balancer: proxy-node, Apache, HAProxy, nginx with one certificate (wrk on loopback)");
    const r = spawnSync(process.execPath, [require.resolve("ts-node/dist/bin"), path.join(__dirname, "tls.ts")], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`bench/tls.ts exited ${r.status}`);
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e);
  process.exit(1);
});
