// The CLI as an operator runs it: the package's built bin, a config file, signals.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as http from "node:http";
import { startMember, request, closeAll, until, sleep } from "../helpers";
import { builtBin } from "../bin";

let BIN = "";

function run(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 20_000 });
}

describe("cli: proxy-node command", function () {
  this.timeout(60_000);
  let dir = "";
  const children: ChildProcess[] = [];

  before(() => {
    BIN = builtBin();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "proxy-node-cli-"));
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
    await closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  function writeConfig(cfg: unknown): string {
    const f = join(dir, "proxy-node.json");
    writeFileSync(f, JSON.stringify(cfg, null, 2));
    return f;
  }

  /** Starts the CLI and resolves with the listen port from its "started" log line. */
  function start(file: string): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
    const child = spawn(process.execPath, [BIN, "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let err = "";
    child.stdout?.resume();
    return new Promise((resolve, reject) => {
      child.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(err);
        if (m) resolve({ child, port: Number(m[1]), stderr: () => err });
      });
      child.on("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
  }

  it("--version and --help", () => {
    const v = run(["--version"]);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
    const h = run(["--help"]);
    assert.equal(h.status, 0);
    assert.match(h.stdout, /--config <file>/);
  });

  it("--check accepts a good config and exits 0", () => {
    const f = writeConfig({ listen: { host: "127.0.0.1", port: 0 }, balancer: { members: [{ url: "http://127.0.0.1:9", route: "lb1" }] } });
    const r = run(["--config", f, "--check"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /config ok/);
  });

  it("a bad config: one error naming the key, exit 2, nothing listening", () => {
    const f = writeConfig({
      balancer: {
        members: [
          { url: "http://127.0.0.1:9", route: "lb1" },
          { url: "ftp://x", route: "lb2" },
        ],
      },
    });
    for (const args of [
      ["--config", f, "--check"],
      ["--config", f],
    ]) {
      const r = run(args);
      assert.equal(r.status, 2);
      assert.equal(r.stderr.trim(), 'config: balancer.members[1].url: expected http://host:port, got "ftp://x"');
    }
  });

  it("serves, logs one JSON line per request, and SIGHUP with a bad file keeps the old config serving", async () => {
    const lb1 = await startMember("lb1");
    const f = writeConfig({ listen: { host: "127.0.0.1", port: 0 }, log: { requests: true }, balancer: { members: [{ url: lb1.url, route: "lb1" }] } });
    const { child, port, stderr } = await start(f);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    assert.equal((await request(port, { path: "/x" })).body, "lb1");
    await until(() => out.includes("\n"), "request log line");
    const line = JSON.parse(out.split("\n")[0]) as Record<string, unknown>;
    assert.equal(line.url, "/x");
    assert.equal(line.status, 200);
    assert.equal(line.member, "lb1");
    writeFileSync(f, '{ "balancer": ');
    child.kill("SIGHUP");
    await until(() => stderr().includes("reload refused"), "reload refusal logged");
    assert.equal((await request(port, { path: "/" })).body, "lb1");
  });

  it("SIGHUP with a good file switches members live", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const cfg = { listen: { host: "127.0.0.1", port: 0 }, log: { requests: false }, balancer: { members: [{ url: lb1.url, route: "lb1" }] } };
    const f = writeConfig(cfg);
    const { child, port, stderr } = await start(f);
    assert.equal((await request(port, { path: "/" })).body, "lb1");
    writeConfig({ ...cfg, balancer: { members: [{ url: lb2.url, route: "lb2" }] } });
    child.kill("SIGHUP");
    await until(() => stderr().includes("config reloaded"), "reload");
    assert.equal((await request(port, { path: "/" })).body, "lb2");
  });

  it("SIGTERM lets an in-flight request finish, then exits 0", async () => {
    const lb1 = await startMember("lb1", (_req, res) => setTimeout(() => res.end("slow but complete"), 700));
    const f = writeConfig({ listen: { host: "127.0.0.1", port: 0 }, log: { requests: false }, balancer: { members: [{ url: lb1.url, route: "lb1" }] } });
    const { child, port } = await start(f);
    const inFlight = request(port, { path: "/", agent: new http.Agent({ keepAlive: true }) });
    await until(() => lb1.seen.length === 1, "request reached the member");
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    const r = await inFlight;
    assert.equal(r.body, "slow but complete");
    assert.equal(await exited, 0);
    await sleep(50);
    await assert.rejects(request(port, { path: "/" }));
  });
});
