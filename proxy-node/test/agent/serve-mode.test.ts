import { strict as assert } from "node:assert";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { startMember, startProxy, closeAll, until, sleep } from "../helpers";
import { validateConfig } from "../../src/config";

/**
 * A balancer-manager that answers like Apache's (a nonce and the workers'
 * links), so an agent that reaches it goes on to POST a change; it records
 * every request it gets.
 */
async function catchingManager(workers: string[]) {
  const seen: Array<{ method: string; body: string }> = [];
  const nonce = "0c2d4e6f-aaaa-bbbb-cccc-ddddeeeeffff";
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(workers.map((w) => `<a href="/balancer-manager?b=drupal&amp;w=${w}&amp;nonce=${nonce}">${w}</a>`).join(""));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/balancer-manager`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("agent: only in agent mode (issue 17)", function () {
  this.timeout(20_000);
  afterEach(closeAll);

  for (const mode of ["serve", "agent"] as const) {
    const what = mode === "serve" ? "no request reaches a balancer-manager" : "the change still reaches Apache's balancer-manager";
    it(`${mode} mode with an apache block, after a reload: a member's health change, and ${what}`, async () => {
      let healthy = true;
      const lb1 = await startMember("lb1");
      const lb2 = await startMember("lb2", (_req, res) => {
        res.writeHead(healthy ? 200 : 503);
        res.end();
      });
      const manager = await catchingManager([lb1.url, lb2.url]);
      try {
        const raw = {
          mode,
          listen: { host: "127.0.0.1", port: 0 },
          log: { requests: false },
          apache: { managerUrl: manager.url, balancer: "drupal" },
          balancer: {
            name: "drupal",
            members: [
              { url: lb1.url, route: "lb1" },
              { url: lb2.url, route: "lb2" },
            ],
            healthCheck: { path: "/health", intervalMs: 100, rise: 1, fall: 1, expect: 200, timeoutMs: 1000 },
          },
        };
        const app = await startProxy(validateConfig(raw));
        const changes: string[] = [];
        app.onHealthChange = (m) => changes.push(`${m.route} ${m.hcFail ? "failed" : "healthy"}`);
        // What a SIGHUP does with the re-read file.
        app.reload(validateConfig(raw));

        healthy = false;
        await until(() => changes.includes("lb2 failed"), "lb2 failing its health check");
        healthy = true;
        await until(() => changes.includes("lb2 healthy"), "lb2 healthy again");
        if (mode === "serve") {
          // An agent would have read the page and posted by now; give it time anyway.
          await sleep(500);
          assert.deepEqual(
            manager.seen.map((r) => r.method),
            [],
            "requests to the balancer-manager in serve mode",
          );
        } else {
          await until(() => manager.seen.filter((r) => r.method === "POST").length >= 2, "disable and enable posted");
          // Apache's health-check flag (HcFl), not D: D is the operator's (agent.ts, setHealth).
          const posts = manager.seen.filter((r) => r.method === "POST").map((r) => new URLSearchParams(r.body).get("w_status_C"));
          assert.deepEqual(posts, ["1", "0"]);
        }
        assert.equal(app.agent !== null, mode === "agent", `an Apache agent after the reload in ${mode} mode`);
      } finally {
        await manager.close();
      }
    });
  }
});
