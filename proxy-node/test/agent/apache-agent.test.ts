import { strict as assert } from "node:assert";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMember, startProxy, baseConfig, closeAll, until } from "../helpers";
import { builtBin } from "../bin";
import { parseManagerPage, sameWorker } from "../../src/agent";
import { validateConfig } from "../../src/config";

interface Change {
  w: string;
  flags: Record<string, string>;
  referer: string | undefined;
}

/** Stands in for Apache's balancer-manager: a nonce, worker links, and Apache 2.4's Referer rule. */
async function fakeApache(workers: string[]) {
  const changes: Change[] = [];
  const refused: string[] = [];
  const nonce = "6b1e3c2a-1111-2222-3333-444455556666";
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const page =
        `<html><body><h3>LoadBalancer Status for <a href="/balancer-manager?b=drupal&amp;nonce=${nonce}">balancer://drupal</a></h3><table>` +
        workers.map((w) => `<tr><td><a href="/balancer-manager?b=drupal&amp;w=${w}&amp;nonce=${nonce}">${w}</a></td></tr>`).join("") +
        "</table></body></html>";
      if (req.method === "POST") {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        const referer = req.headers.referer;
        const port = (server.address() as AddressInfo).port;
        if (!referer || !referer.startsWith(`http://127.0.0.1:${port}/`)) refused.push("no referer");
        else if (form.get("nonce") !== nonce || form.get("b") !== "drupal") refused.push("bad nonce");
        else {
          const flags: Record<string, string> = {};
          for (const [k, v] of form) if (k.startsWith("w_status_")) flags[k.slice(9)] = v;
          changes.push({ w: form.get("w") ?? "", flags, referer });
        }
      }
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(page);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/balancer-manager`, changes, refused, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("agent: beside Apache", function () {
  this.timeout(20_000);
  afterEach(closeAll);

  it("reads the nonce and worker names from the balancer-manager page", () => {
    const p = parseManagerPage(
      '<a href="/balancer-manager?b=drupal&amp;w=http://lb1:80&amp;nonce=abc-1">x</a><a href="?b=other&amp;w=http://z&amp;nonce=zzz">',
      "drupal",
    );
    assert.deepEqual(p, { nonce: "abc-1", workers: ["http://lb1:80"] });
    assert.equal(parseManagerPage("<html>no balancer</html>", "drupal"), null);
    assert.ok(sameWorker("http://LB1", "http://lb1:80/"));
    assert.ok(!sameWorker("http://lb1:8080", "http://lb1:80"));
  });

  it("a member failing its health check is marked failed in Apache (HcFl, not the operator's D), and cleared when healthy", async () => {
    let healthy = true;
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2", (_req, res) => {
      res.writeHead(healthy ? 200 : 503);
      res.end();
    });
    // Apache names workers as configured; here without an explicit port for lb2's host form.
    const apache = await fakeApache([lb1.url, lb2.url]);
    try {
      const cfg = validateConfig({
        mode: "agent",
        log: { requests: false },
        apache: { managerUrl: apache.url, balancer: "drupal" },
        balancer: {
          name: "drupal",
          members: [
            { url: lb1.url, route: "lb1" },
            { url: lb2.url, route: "lb2" },
          ],
          healthCheck: { path: "/health", intervalMs: 100, rise: 2, fall: 2, expect: 200, timeoutMs: 1000 },
        },
      });
      const app = await startProxy(cfg);
      assert.equal(app.port, 0, "agent mode serves no clients");
      healthy = false;
      await until(() => apache.changes.length >= 1, "health failure sent to Apache");
      assert.deepEqual(apache.changes[0], { w: lb2.url, flags: { C: "1" }, referer: apache.url });
      healthy = true;
      await until(() => apache.changes.length >= 2, "recovery sent to Apache");
      assert.deepEqual(apache.changes[1].flags, { C: "0" });
      assert.deepEqual(apache.refused, []);
    } finally {
      await apache.close();
    }
  });

  it("drain CLI in agent mode: drain flag first, then disabled after the timeout", async () => {
    const apache = await fakeApache(["http://127.0.0.1:9001", "http://127.0.0.1:9002"]);
    const dir = mkdtempSync(join(tmpdir(), "proxy-node-agent-"));
    try {
      const f = join(dir, "c.json");
      writeFileSync(
        f,
        JSON.stringify({
          mode: "agent",
          log: { requests: false },
          apache: { managerUrl: apache.url, balancer: "drupal" },
          balancer: {
            name: "drupal",
            members: [
              { url: "http://127.0.0.1:9001", route: "lb1" },
              { url: "http://127.0.0.1:9002", route: "lb2" },
            ],
            healthCheck: { path: "/" },
          },
        }),
      );
      // Asynchronous: a synchronous spawn would block the fake Apache in this process.
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [builtBin(), "drain", "lb2", "--config", f, "--timeout", "0.2"]);
        let err = "";
        c.stderr.on("data", (d: Buffer) => (err += d));
        c.on("exit", (status) => resolve({ status, stderr: err }));
      });
      assert.equal(r.status, 0, String(r.stderr));
      assert.deepEqual(
        apache.changes.map((c) => [c.w, c.flags]),
        [
          ["http://127.0.0.1:9002", { N: "1" }],
          ["http://127.0.0.1:9002", { D: "1", N: "0" }],
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await apache.close();
    }
  });

  it("drain CLI in serve mode: the member drains at once (sticky clients only) and is disabled after the timeout", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig(
        [
          { url: lb1.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        {
          manager: { host: "127.0.0.1", port: 0, allow: ["127.0.0.0/8"], token: "drain-token-1" },
        },
      ),
    );
    const dir = mkdtempSync(join(tmpdir(), "proxy-node-drain-"));
    try {
      const f = join(dir, "c.json");
      writeFileSync(
        f,
        JSON.stringify({
          manager: { host: "127.0.0.1", port: app.managerPort, allow: ["127.0.0.0/8"], token: "drain-token-1" },
          balancer: {
            members: [
              { url: lb1.url, route: "lb1" },
              { url: lb2.url, route: "lb2" },
            ],
          },
        }),
      );
      const c = spawn(process.execPath, [builtBin(), "drain", "lb2", "--config", f, "--timeout", "1"]);
      const exited = new Promise<number | null>((r) => c.on("exit", (s) => r(s)));
      await until(() => app.balancer.members[1].status === "draining", "lb2 draining");
      await until(() => app.balancer.members[1].status === "disabled", "lb2 disabled after the timeout");
      assert.equal(await exited, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
