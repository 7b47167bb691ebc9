// A change of proxy-node's code under load (issue 16): SIGUSR2 hands the
// listening sockets to the bin as it is on disk now, which serves on them
// while the old process finishes what it has. Clients see nothing.
import { strict as assert } from "node:assert";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMember, request, closeAll, until, freePort, sleep } from "../helpers";
import { builtBin, RunningBin, runBin } from "../bin";
import { VERSION } from "../../src/version";
import { recordFigure } from "../../../test/support/figures";
import * as https from "node:https";
import { makeCa, TestCa } from "../tls/certs";

const TOKEN = "handover-token-1";
const auth = { Authorization: `Bearer ${TOKEN}` };

interface Load {
  sent: number;
  failures: string[];
  stop(): Promise<void>;
}

/** A plain GET / on a new connection: what went wrong, or null. */
function getRoot(port: number): () => Promise<string | null> {
  return async () => {
    const r = await request(port, { path: "/" });
    return r.status === 200 ? null : `status ${r.status}: ${r.body}`;
  };
}

/** `loops` clients, each sending one request after the other without pause; `send` says what went wrong, or null. */
function steadyLoad(send: () => Promise<string | null>, loops: number): Load {
  let running = true;
  const load: Load = { sent: 0, failures: [], stop: async () => undefined };
  const loop = async (): Promise<void> => {
    while (running) {
      load.sent++;
      try {
        const failure = await send();
        if (failure !== null) load.failures.push(failure);
      } catch (e) {
        load.failures.push((e as Error).message);
      }
    }
  };
  const all = Array.from({ length: loops }, loop);
  load.stop = async () => {
    running = false;
    await Promise.all(all);
  };
  return load;
}

/** One HTTPS request on a new connection, trusting the test's CA. */
function httpsGet(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: "127.0.0.1", port, path: "/", agent: false, ca, servername: "public.example" }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve(`${res.statusCode} ${body}`));
      })
      .on("error", reject);
  });
}

function pidIn(file: string): number {
  return Number(readFileSync(file, "utf8").trim());
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const workers of [1, 2]) {
  describe(`cli: handover to new code under load (SIGUSR2, workers: ${workers})`, function () {
    this.timeout(90_000);
    let dir = "";
    let bin: RunningBin | null = null;
    let pidfile = "";

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "proxy-node-handover-"));
      pidfile = join(dir, "proxy-node.pid");
    });
    afterEach(async () => {
      // The successor is no child of the test's: stopped by its pid.
      let successor = 0;
      try {
        successor = pidIn(pidfile);
      } catch {
        // never started
      }
      if (successor && successor !== bin?.child.pid && alive(successor)) {
        process.kill(successor, "SIGTERM");
        await until(() => !alive(successor), "the successor to stop");
      }
      await bin?.stop();
      bin = null;
      await closeAll();
      rmSync(dir, { recursive: true, force: true });
    });

    it("fails no request, finishes the one in flight on the old code, serves the new code with the operator's changes, pidfile follows", async () => {
      const lb1 = await startMember("lb1");
      const lb2 = await startMember("lb2", (req, res) => {
        // A slow page: in flight on the old process when it hands over.
        setTimeout(() => res.end(req.url === "/slow" ? "slow done" : "lb2"), req.url === "/slow" ? 2000 : 0);
      });
      const port = await freePort();
      const mport = await freePort();
      // The bin as installed on a balancer: one file, replaced whole by the next version.
      const installed = join(dir, "proxy-node.js");
      copyFileSync(builtBin(), installed);
      const b = (bin = runBin(
        {
          workers,
          listen: { host: "127.0.0.1", port },
          manager: { host: "127.0.0.1", port: mport, allow: ["127.0.0.0/8"], token: TOKEN },
          log: { requests: false },
          balancer: {
            members: [
              { url: lb1.url, route: "lb1" },
              { url: lb2.url, route: "lb2" },
            ],
          },
        },
        { bin: installed, args: ["--pidfile", pidfile] },
      ));
      await until(() => /"msg":"proxy-node (cluster )?started"/.test(b.stderr()) && b.stderr().includes(`"pid":${b.child.pid}`), `start: ${b.stderr()}`);
      await until(() => {
        try {
          return pidIn(pidfile) === b.child.pid;
        } catch {
          return false;
        }
      }, "the pidfile naming the process");
      // An operator's change the new process must keep.
      const change = await request(mport, {
        method: "POST",
        path: "/api/members/lb1",
        headers: { ...auth, "Content-Type": "application/json" },
        body: '{"lbfactor":7}',
      });
      assert.equal(change.status, 200, change.body);

      const load = steadyLoad(getRoot(port), 4);
      await sleep(500);
      const slow = request(port, { path: "/slow", headers: { Cookie: "BALANCEID=balancer.lb2" } });
      await sleep(200);
      // The next version, written over the installed one as a delivery does.
      const next = `${VERSION}-next`;
      const code = readFileSync(installed, "utf8");
      assert.ok(code.includes(`"${VERSION}"`), "the bin does not carry its version as expected");
      writeFileSync(`${installed}.tmp`, code.replace(`"${VERSION}"`, `"${next}"`), { mode: 0o755 });
      copyFileSync(`${installed}.tmp`, installed);
      const oldPid = b.child.pid as number;
      const exited = new Promise<number | null>((r) => b.child.once("exit", (c) => r(c)));
      const t0 = Date.now();
      b.child.kill("SIGUSR2");
      await until(() => pidIn(pidfile) !== oldPid, `the pidfile naming the new process: ${b.stderr()}`, 30_000);
      const tookOver = (Date.now() - t0) / 1000;
      const newPid = pidIn(pidfile);
      assert.ok(alive(newPid), "the pidfile names a process that is not running");
      const slowReply = await slow;
      assert.equal(slowReply.status, 200);
      assert.equal(slowReply.body, "slow done", "the request in flight on the old process did not finish");
      assert.equal(await exited, 0, `the old process did not exit cleanly: ${b.stderr()}`);
      const oldGone = (Date.now() - t0) / 1000;
      await sleep(1000);
      await load.stop();

      recordFigure(`proxy-node handover (workers ${workers}): requests sent`, load.sent);
      recordFigure(`proxy-node handover (workers ${workers}): requests failed`, load.failures.length);
      recordFigure(`proxy-node handover (workers ${workers}): new process serving after, s`, tookOver);
      assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.sent} requests failed`);
      assert.ok(load.sent > 50, `too little load to show anything: ${load.sent}`);
      assert.ok(oldGone >= 1.5, `the old process exited after ${oldGone} s, before its slow request could have finished`);

      const started = b
        .stderr()
        .split("\n")
        .filter((l) => l.includes('"msg":"proxy-node started"') && l.includes(`"pid":${newPid}`));
      assert.equal(started.length, 1, `no start of the new process in the log: ${b.stderr()}`);
      assert.match(started[0], new RegExp(`"version":"${next}"`), "the new process does not run the new code");
      assert.match(started[0], /"handover":true/);
      // The manager is the new process's, with the operator's change.
      const members = JSON.parse((await request(mport, { path: "/api/members", headers: auth })).body) as {
        members: Array<{ route: string; lbfactor: number }>;
      };
      assert.equal(members.members.find((m) => m.route === "lb1")?.lbfactor, 7, "the operator's change was lost in the handover");
      assert.equal((await request(port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } })).body, "lb2");
    });

    it("with HTTPS: the HTTPS listener is handed over too, and no HTTPS request fails", async () => {
      const ca: TestCa = makeCa();
      try {
        const leaf = ca.leaf(["public.example", "127.0.0.1"]);
        const lb1 = await startMember("lb1");
        const [port, tport] = [await freePort(), await freePort()];
        const installed = join(dir, "proxy-node.js");
        copyFileSync(builtBin(), installed);
        const b = (bin = runBin(
          {
            workers,
            listen: { host: "127.0.0.1", port },
            tls: { host: "127.0.0.1", port: tport, cert: leaf.cert, key: leaf.key, redirect: false },
            log: { requests: false },
            balancer: { members: [{ url: lb1.url, route: "lb1" }] },
          },
          { bin: installed, args: ["--pidfile", pidfile] },
        ));
        await until(() => /"msg":"proxy-node (cluster )?started"/.test(b.stderr()) && b.stderr().includes(`"pid":${b.child.pid}`), `start: ${b.stderr()}`);
        const load = steadyLoad(async () => {
          const r = await httpsGet(tport, ca.certPem);
          return r === "200 lb1" ? null : r;
        }, 2);
        await sleep(300);
        const oldPid = b.child.pid as number;
        const exited = new Promise<number | null>((r) => b.child.once("exit", (c) => r(c)));
        b.child.kill("SIGUSR2");
        await until(() => pidIn(pidfile) !== oldPid, `the new process: ${b.stderr()}`, 30_000);
        assert.equal(await exited, 0);
        await sleep(500);
        await load.stop();
        assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.sent} HTTPS requests failed`);
        assert.ok(load.sent > 20, `too little load: ${load.sent}`);
        assert.equal(await httpsGet(tport, ca.certPem), "200 lb1");
      } finally {
        ca.remove();
      }
    });

    it("a new process that cannot serve (its config names another port) is dropped: the old one keeps serving", async () => {
      const lb1 = await startMember("lb1");
      const port = await freePort();
      const installed = join(dir, "proxy-node.js");
      copyFileSync(builtBin(), installed);
      const config = { workers, listen: { host: "127.0.0.1", port }, log: { requests: false }, balancer: { members: [{ url: lb1.url, route: "lb1" }] } };
      const b = (bin = runBin(config, { bin: installed, args: ["--pidfile", pidfile] }));
      await until(() => /"msg":"proxy-node (cluster )?started"/.test(b.stderr()) && b.stderr().includes(`"pid":${b.child.pid}`), `start: ${b.stderr()}`);
      // The config file is the one runBin wrote: the argument after --config.
      const file = b.child.spawnargs[b.child.spawnargs.indexOf("--config") + 1];
      writeFileSync(file, JSON.stringify({ ...config, listen: { host: "127.0.0.1", port: await freePort() } }));
      const load = steadyLoad(getRoot(port), 2);
      b.child.kill("SIGUSR2");
      await until(() => b.stderr().includes("handover failed; this process keeps serving"), `the failed handover: ${b.stderr()}`, 30_000);
      await sleep(500);
      await load.stop();
      assert.match(b.stderr(), /a new address needs a restart/);
      assert.deepEqual(load.failures, []);
      assert.equal(pidIn(pidfile), b.child.pid, "the pidfile does not name the process still serving");
      assert.equal((await request(port, { path: "/" })).body, "lb1");
    });
  });
}

describe("cli: handover in agent mode (beside Apache: the manager's listener)", function () {
  this.timeout(60_000);
  let dir = "";
  let bin: RunningBin | null = null;

  afterEach(async () => {
    const pidfile = join(dir, "proxy-node.pid");
    const successor = pidIn(pidfile);
    if (successor !== bin?.child.pid && alive(successor)) {
      process.kill(successor, "SIGTERM");
      await until(() => !alive(successor), "the successor to stop");
    }
    await bin?.stop();
    bin = null;
    await closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the manager answers throughout and the new process runs it", async () => {
    dir = mkdtempSync(join(tmpdir(), "proxy-node-handover-"));
    const pidfile = join(dir, "proxy-node.pid");
    const lb1 = await startMember("lb1");
    const mport = await freePort();
    const b = (bin = runBin(
      {
        mode: "agent",
        manager: { host: "127.0.0.1", port: mport, allow: ["127.0.0.0/8"], token: TOKEN },
        // Never asked here: the member stays healthy, and there are no peers.
        apache: { managerUrl: `http://127.0.0.1:${await freePort()}/balancer-manager` },
        log: { requests: false },
        balancer: { members: [{ url: lb1.url, route: "lb1" }], healthCheck: { intervalMs: 60_000 } },
      },
      { args: ["--pidfile", pidfile] },
    ));
    await until(() => b.stderr().includes(`"pid":${b.child.pid}`), `start: ${b.stderr()}`);
    const load = steadyLoad(async () => {
      const r = await request(mport, { path: "/api/members", headers: auth });
      return r.status === 200 ? null : `status ${r.status}`;
    }, 2);
    await sleep(300);
    const oldPid = b.child.pid as number;
    const exited = new Promise<number | null>((r) => b.child.once("exit", (c) => r(c)));
    b.child.kill("SIGUSR2");
    await until(() => pidIn(pidfile) !== oldPid, `the new process: ${b.stderr()}`, 30_000);
    assert.equal(await exited, 0);
    await sleep(300);
    await load.stop();
    assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.sent} manager requests failed`);
    assert.ok(load.sent > 20, `too little load: ${load.sent}`);
    // The old process is gone: this answer is the new one's.
    assert.ok(alive(pidIn(pidfile)));
    assert.equal((await request(mport, { path: "/api/members", headers: auth })).status, 200);
  });
});
