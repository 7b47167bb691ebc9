// admit and retire (member-changes.ts): what runs on the balancer before a
// reload that adds or removes a web server. Against a real proxy-node on
// 127.0.0.1 with its manager, the way the balancer's apply runs them.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as http from "node:http";
import { startMember, startProxy, baseConfig, request, closeAll, sleep } from "../helpers";
import { builtBin } from "../bin";
import { admit, liveDeps, MemberChangeDeps, NotAdmitted, retire } from "../../src/member-changes";
import { silentLogger } from "../../src/log";
import { apacheWorkerCounters } from "../../src/member-control";
import type { Config } from "../../src/config";

const TOKEN = "test-token-456";

/** A config for the same proxy-node with `members`: what the balancer's new config file holds. */
function configWith(managerPort: number, members: Array<{ url: string; route: string }>): Config {
  return baseConfig(
    members,
    { manager: { host: "127.0.0.1", port: managerPort, allow: ["127.0.0.0/8"], token: TOKEN } },
    {
      healthCheck: { path: "/health", intervalMs: 60_000, expect: 200, rise: 2, fall: 2, timeoutMs: 1000 },
    },
  );
}

async function running(members: Array<{ url: string; route: string }>) {
  const app = await startProxy(baseConfig(members, { manager: { host: "127.0.0.1", port: 0, allow: ["127.0.0.0/8"], token: TOKEN } }));
  return app;
}

async function stateOf(port: number, route: string): Promise<string | undefined> {
  const r = await request(port, { path: "/api/members", headers: { Authorization: `Bearer ${TOKEN}` } });
  return (JSON.parse(r.body) as { members: Array<{ route: string; status: string }> }).members.find((m) => m.route === route)?.status;
}

/** Keeps sending a pinned client's requests to `route` through the proxy until stopped. */
function pinnedLoad(port: number, route: string, everyMs: number): { stop: () => Promise<number> } {
  let on = true;
  let sent = 0;
  const loop = (async () => {
    while (on) {
      await request(port, { path: "/", headers: { cookie: `BALANCEID=balancer.${route}` } }).catch(() => undefined);
      sent++;
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return sent;
    },
  };
}

/** The bin run as the balancer's apply runs it; async, since the proxy-node it asks lives in this process. */
function runBinAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [builtBin(), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** proxy-node running with lb1 and lb2, and the next config, which drops lb2. */
async function lb2Removed(): Promise<{ app: Awaited<ReturnType<typeof running>>; next: Config }> {
  const lb1 = await startMember("lb1");
  const lb2 = await startMember("lb2");
  const app = await running([
    { url: lb1.url, route: "lb1" },
    { url: lb2.url, route: "lb2" },
  ]);
  return { app, next: configWith(app.managerPort, [{ url: lb1.url, route: "lb1" }]) };
}

describe("member changes: admit and retire before a reload", function () {
  this.timeout(30_000);
  afterEach(closeAll);

  it("retire drains only the member the new config no longer has, and returns once it had no request for --idle", async () => {
    const { app, next } = await lb2Removed();
    const lines: string[] = [];
    const deps = { ...liveDeps(next, silentLogger), say: (l: string) => void lines.push(l) };
    // A sticky client of lb2 keeps coming for 2 s, then stops: retire waits for it, then 1 s of quiet.
    const load = pinnedLoad(app.port, "lb2", 100);
    setTimeout(() => void load.stop(), 2000);
    const t0 = Date.now();
    await retire(next, deps, { timeoutS: 20, idleS: 1 });
    const took = Date.now() - t0;
    await load.stop();
    assert.equal(await stateOf(app.managerPort, "lb2"), "draining");
    assert.equal(await stateOf(app.managerPort, "lb1"), "enabled");
    assert.ok(took >= 2500 && took < 10_000, `retire took ${took} ms: should wait out the 2 s of requests plus 1 s idle`);
    assert.match(lines.join("\n"), /retire: lb2 \(.*\) drained for [\d.]+ s \(no request for 1 s\)/);
    // Draining: its sticky client still reaches it, a new client does not.
    assert.equal((await request(app.port, { path: "/", headers: { cookie: "BALANCEID=balancer.lb2" } })).body, "lb2");
    for (let i = 0; i < 4; i++) assert.equal((await request(app.port, { path: "/" })).body, "lb1");
  });

  it("retire gives up waiting at --timeout while the sticky client keeps coming", async () => {
    const { app, next } = await lb2Removed();
    const lines: string[] = [];
    const load = pinnedLoad(app.port, "lb2", 100);
    const t0 = Date.now();
    await retire(next, { ...liveDeps(next, silentLogger), say: (l) => void lines.push(l) }, { timeoutS: 2, idleS: 1 });
    const took = Date.now() - t0;
    const sent = await load.stop();
    assert.ok(sent > 10, `the pinned client sent ${sent} requests`);
    assert.ok(took >= 2000 && took < 5000, `retire took ${took} ms with --timeout 2`);
    assert.match(lines.join("\n"), /retire: lb2 .* \(timeout 2 s\)/);
  });

  it("with nothing removed, retire changes nothing; with no proxy-node running, it says so and lets the reload go on", async () => {
    const lb1 = await startMember("lb1");
    const app = await running([{ url: lb1.url, route: "lb1" }]);
    const lines: string[] = [];
    const same = configWith(app.managerPort, [{ url: lb1.url, route: "lb1" }]);
    await retire(same, { ...liveDeps(same, silentLogger), say: (l) => void lines.push(l) }, { timeoutS: 5, idleS: 1 });
    assert.equal(lines.length, 0, lines.join("\n"));
    assert.equal(await stateOf(app.managerPort, "lb1"), "enabled");
    const nobody = configWith(1, [{ url: lb1.url, route: "lb1" }]);
    await retire(nobody, { ...liveDeps(nobody, silentLogger), say: (l) => void lines.push(l) }, { timeoutS: 5, idleS: 1 });
    assert.match(lines.join("\n"), /retire: skipped, the running proxy-node cannot be asked \(.*ECONNREFUSED/);
  });

  it("admit passes a new member that answers its health check, and names a failing one with its check and last answer", async () => {
    const lb1 = await startMember("lb1");
    const healthy = await startMember("lb2");
    const sick = await startMember("lb3", (req, res) => {
      res.writeHead(req.url === "/health" ? 503 : 200);
      res.end("database unreachable");
    });
    const app = await running([{ url: lb1.url, route: "lb1" }]);
    const lines: string[] = [];
    const good = configWith(app.managerPort, [
      { url: lb1.url, route: "lb1" },
      { url: healthy.url, route: "lb2" },
    ]);
    await admit(good, { ...liveDeps(good, silentLogger), say: (l) => void lines.push(l) }, 10);
    assert.match(lines.join("\n"), /admit: lb2 \(.*\) passed GET \/health 2 times in a row/);
    assert.equal(healthy.seen.filter((r) => r.url === "/health").length, 2);
    assert.equal(lb1.seen.length, 0, "a member already running was checked again");

    const bad = configWith(app.managerPort, [
      { url: lb1.url, route: "lb1" },
      { url: sick.url, route: "lb3" },
    ]);
    const t0 = Date.now();
    await assert.rejects(
      admit(bad, { ...liveDeps(bad, silentLogger), say: () => undefined }, 2),
      (e: Error) =>
        e instanceof NotAdmitted &&
        /member lb3 \(http:\/\/127\.0\.0\.1:\d+\) did not pass its health check GET \/health .* within 2 s; last: status 503, expected 200/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 5000, "admit overran its timeout");
  });

  it("the bin: retire and admit exit 0 and 1 as the balancer's apply reads them", async () => {
    const lb1 = await startMember("lb1");
    const app = await running([{ url: lb1.url, route: "lb1" }]);
    const dir = mkdtempSync(join(tmpdir(), "proxy-node-members-"));
    try {
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
      const deadPort = (closed.address() as { port: number }).port;
      await new Promise<void>((r) => closed.close(() => r()));
      const file = join(dir, "config.json");
      const raw = {
        listen: { host: "127.0.0.1", port: 0 },
        manager: { host: "127.0.0.1", port: app.managerPort, allow: ["127.0.0.0/8"], token: TOKEN },
        balancer: {
          members: [
            { url: lb1.url, route: "lb1" },
            { url: `http://127.0.0.1:${deadPort}`, route: "lb9" },
          ],
          healthCheck: { path: "/health", intervalMs: 1000, expect: 200, rise: 2, fall: 2, timeoutMs: 500 },
        },
      };
      writeFileSync(file, JSON.stringify(raw));
      const a = await runBinAsync(["admit", "--config", file, "--timeout", "1"]);
      assert.equal(a.status, 1, a.stderr);
      assert.match(a.stderr, /proxy-node admit: member lb9 .* did not pass its health check/);
      const r = await runBinAsync(["retire", "--config", file, "--timeout", "1", "--idle", "1"]);
      assert.equal(r.status, 0, r.stderr);
      const u = await runBinAsync(["retire", "--config", file, "--bogus", "1"]);
      assert.equal(u.status, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("retire with fake deps: each removed member drained at once, in parallel, and a member Apache no longer has is done at once", async () => {
    let clock = 0;
    const drained: string[] = [];
    const cfg = configWith(1, [{ url: "http://10.0.0.11:80", route: "lb1" }]);
    const deps: MemberChangeDeps = {
      running: async () => [
        { route: "lb1", url: "http://10.0.0.11:80", status: "enabled" },
        { route: "lb2", url: "http://10.0.0.12:80", status: "enabled" },
        { route: "lb3", url: "http://10.0.0.13:80", status: "enabled" },
      ],
      drain: async (m) => void drained.push(m.route),
      // lb2 is gone from Apache already; lb3 takes a request every second, forever.
      traffic: async (m) => (m.route === "lb2" ? null : { elected: Math.floor(clock / 1000), busy: 0 }),
      probe: async () => ({ ok: true, reason: "ok" }),
      sleep: async (ms) => void (clock += ms),
      now: () => clock,
      say: () => undefined,
    };
    await retire(cfg, deps, { timeoutS: 30, idleS: 3 });
    assert.deepEqual(drained.sort(), ["lb2", "lb3"]);
    assert.ok(clock >= 30_000 && clock < 31_000, `waited ${clock} ms of fake time for lb3 (timeout 30 s)`);
  });

  it("retire with fake deps: on a balancer pair no early end (the other balancer's clients are not counted here); a traffic read that fails drops the member, the reload goes on", async () => {
    let clock = 0;
    const said: string[] = [];
    const removedTwo = [
      { route: "lb1", url: "http://10.0.0.11:80", status: "enabled" as const },
      { route: "lb2", url: "http://10.0.0.12:80", status: "enabled" as const },
    ];
    const deps = (traffic: MemberChangeDeps["traffic"]): MemberChangeDeps => ({
      running: async () => removedTwo,
      drain: async () => undefined,
      traffic,
      probe: async () => ({ ok: true, reason: "ok" }),
      sleep: async (ms) => void (clock += ms),
      now: () => clock,
      say: (line) => void said.push(line),
    });
    const idle: MemberChangeDeps["traffic"] = async () => ({ elected: 7, busy: 0 });
    const single = configWith(1, [{ url: "http://10.0.0.11:80", route: "lb1" }]);
    await retire(single, deps(idle), { timeoutS: 30, idleS: 3 });
    assert.ok(clock < 5_000, `a member with no request waited ${clock} ms on a single balancer`);
    clock = 0;
    const pair: Config = {
      ...single,
      redundancy: { self: "balancer", virtualAddress: "10.0.0.4", peers: [{ name: "balancer2", managerUrl: "http://10.0.0.3:8081" }] },
    };
    await retire(pair, deps(idle), { timeoutS: 30, idleS: 3 });
    assert.ok(clock >= 30_000, `on a pair lb2 was dropped after ${clock} ms, before the timeout`);
    said.length = 0;
    await retire(
      single,
      deps(async () => Promise.reject(new Error("page unreadable"))),
      { timeoutS: 30, idleS: 3 },
    );
    assert.match(said.join("\n"), /retire: lb2 \(http:\/\/10\.0\.0\.12:80\): its traffic cannot be read \(page unreadable\); dropped after/);
  });

  it("reads Elected and Busy of one worker from Apache's balancer-manager page", () => {
    const page =
      "<table><tr><th>Worker URL</th><th>Route</th><th>Status</th><th>Elected</th><th>Busy</th></tr>" +
      '<tr><td><a href="/balancer-manager?b=drupal&amp;w=http://10.0.0.11:80&amp;nonce=x">http://10.0.0.11:80</a></td><td>lb1</td><td>Init Ok</td><td>17</td><td>1</td></tr>' +
      '<tr><td><a href="/balancer-manager?b=drupal&amp;w=http://10.0.0.12:80&amp;nonce=x">http://10.0.0.12:80</a></td><td>lb2</td><td>Init Drn Ok</td><td>4</td><td>0</td></tr></table>';
    assert.deepEqual(apacheWorkerCounters(page, "http://10.0.0.12"), { elected: 4, busy: 0 });
    assert.deepEqual(apacheWorkerCounters(page, "http://10.0.0.11:80/"), { elected: 17, busy: 1 });
    assert.equal(apacheWorkerCounters(page, "http://10.0.0.13:80"), null);
  });
});
