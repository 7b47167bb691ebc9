// drain / disable / enable / status against a running proxy-node, as the
// cluster's rolling update and `npm run drain` run them on the balancer.
import { strict as assert } from "node:assert";
import { spawn, ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMember, request, closeAll, freePort } from "../helpers";
import { builtBin } from "../bin";
import { apacheWorkerCounters } from "../../src/member-control";

let BIN = "";
const TOKEN = "member-commands-token";

function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("exit", (status) => resolve({ status, stdout, stderr, ms: Date.now() - t0 })));
}

describe("cli: member commands against a running proxy-node", function () {
  this.timeout(60_000);
  let dir = "";
  let file = "";
  let port = 0;
  let child: ChildProcess | undefined;

  before(() => {
    BIN = builtBin();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "proxy-node-members-"));
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const managerPort = await freePort();
    file = join(dir, "config.json");
    writeFileSync(
      file,
      JSON.stringify({
        listen: { host: "127.0.0.1", port: 0 },
        log: { requests: false },
        manager: { host: "127.0.0.1", port: managerPort, allow: ["127.0.0.1/32"], token: TOKEN },
        balancer: {
          members: [
            { url: lb1.url, route: "lb1" },
            { url: lb2.url, route: "lb2" },
          ],
          healthCheck: { path: "/", intervalMs: 200, rise: 1, fall: 1, timeoutMs: 500 },
        },
      }),
    );
    child = spawn(process.execPath, [BIN, "--config", file], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    port = await new Promise<number>((resolve, reject) => {
      child!.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(err);
        if (m) resolve(Number(m[1]));
      });
      child!.on("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
  });
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const served = async (cookie?: string): Promise<string> =>
    (await request(port, { path: "/", headers: cookie ? { cookie: `BALANCEID=balancer.${cookie}` } : {} })).body;

  it("a drain survives a reload (SIGHUP) whose config says for that member what it said before; a config that changes its status wins", async () => {
    assert.equal((await run(["drain", "lb2", "--config", file, "--no-wait"])).status, 0);
    const cfg = JSON.parse(readFileSync(file, "utf8")) as { balancer: { members: Array<Record<string, unknown>>; retry?: number } };
    const reload = async (): Promise<void> => {
      writeFileSync(file, JSON.stringify(cfg));
      child!.kill("SIGHUP");
      // A reload takes a few ms; each check after it names the status it expects.
      await new Promise((r) => setTimeout(r, 500));
    };
    // An unrelated change (lb1's retry): lb2 stays drained, as Apache's balancer-manager flags do over a graceful restart.
    cfg.balancer.members[0].retry = 7;
    await reload();
    assert.equal((await run(["status", "lb2", "--config", file])).stdout.trim(), "lb2 draining draining");
    for (let i = 0; i < 4; i++) assert.equal(await served(), "lb1", "a new client reached the drained lb2 after the reload");
    // The config now gives lb2 a status of its own: that wins.
    cfg.balancer.members[1].status = "disabled";
    await reload();
    assert.equal((await run(["status", "lb2", "--config", file])).stdout.trim(), "lb2 disabled disabled");
    cfg.balancer.members[1].status = "enabled";
    await reload();
    assert.equal((await run(["status", "lb2", "--config", file])).stdout.trim(), "lb2 enabled ok");
  });

  it("drain --no-wait: new clients go to the others, a pinned client stays; status says so; enable puts it back", async () => {
    const r = await run(["drain", "lb2", "--config", file, "--no-wait"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lb2: draining/);
    assert.equal((await run(["status", "lb2", "--config", file])).stdout.trim(), "lb2 draining draining");
    for (let i = 0; i < 4; i++) assert.equal(await served(), "lb1");
    assert.equal(await served("lb2"), "lb2");
    const e = await run(["enable", "lb2", "--config", file, "--wait-healthy", "10"]);
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stdout, /lb2: enabled, and the balancer's health check passes/);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await served());
    assert.deepEqual([...seen].sort(), ["lb1", "lb2"]);
  });

  it("drain with --idle: a member with no request is disabled after the idle time, long before --timeout", async () => {
    const r = await run(["drain", "lb2", "--config", file, "--timeout", "30", "--idle", "1"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /no request for 1 s/);
    assert.match(r.stdout, /lb2: disabled after/);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    // Disabled: even its pinned clients go elsewhere now.
    assert.equal(await served("lb2"), "lb1");
  });

  it("drain: a pinned client that keeps coming holds the member until --timeout, then it is disabled", async () => {
    let going = true;
    const pinned = (async () => {
      while (going) {
        await served("lb2");
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const r = await run(["drain", "lb2", "--config", file, "--timeout", "3", "--idle", "1"]);
    going = false;
    await pinned;
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /no request for/);
    assert.ok(r.ms >= 3000, `disabled after ${r.ms} ms although its client kept coming`);
    assert.equal((await run(["status", "lb2", "--config", file])).stdout.trim(), "lb2 disabled disabled");
  });

  it("drain --keep-one: drains while another member takes new clients; the last one is left serving, exit 4", async () => {
    const first = await run(["drain", "lb2", "--config", file, "--no-wait", "--keep-one"]);
    assert.equal(first.status, 0, first.stderr);
    assert.equal((await run(["status", "lb2", "--config", file])).stdout.trim(), "lb2 draining draining");
    const last = await run(["drain", "lb1", "--config", file, "--no-wait", "--keep-one"]);
    assert.equal(last.status, 4, last.stdout + last.stderr);
    assert.match(last.stdout, /lb1: not drained: no other member takes new clients/);
    assert.equal((await run(["status", "lb1", "--config", file])).stdout.trim(), "lb1 enabled ok");
    assert.equal(await served(), "lb1");
  });

  it("an unknown route exits 3 and names the routes; disable works at once", async () => {
    const r = await run(["drain", "lb9", "--config", file, "--no-wait"]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /no member with route lb9 in this config \(routes: lb1, lb2\)/);
    const d = await run(["disable", "lb1", "--config", file]);
    assert.equal(d.status, 0, d.stderr);
    assert.equal(await served("lb1"), "lb2");
  });
});

describe("member-control: Apache's balancer-manager counters", () => {
  it("reads Elected and Busy of one worker by its columns' headers", () => {
    const html =
      "<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th></tr>\n" +
      '<tr><td><a href="/balancer-manager?b=drupal&amp;w=http://172.30.57.11:80&amp;nonce=x">http://172.30.57.11:80</a></td><td>lb1</td><td></td><td>1.00</td><td>0</td><td>Init Ok </td><td>17</td><td>0</td><td>0</td></tr>\n' +
      '<tr><td><a href="/balancer-manager?b=drupal&amp;w=http://172.30.57.12:80&amp;nonce=x">http://172.30.57.12:80</a></td><td>lb2</td><td></td><td>1.00</td><td>0</td><td>Init Drn Ok </td><td>42</td><td>3</td><td>0</td></tr></table>';
    assert.deepEqual(apacheWorkerCounters(html, "http://172.30.57.12"), { elected: 42, busy: 3 });
    assert.equal(apacheWorkerCounters(html, "http://172.30.57.13:80"), null);
  });
});
