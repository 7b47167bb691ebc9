/**
 * How proxy-node reaches the balancer and starts there: one file (the package's
 * built bin), one start command for the systemd unit and the container
 * supervisor, and the supervisor's stop/restart run for real, locally (sh, a
 * stand-in for proxy-node on 127.0.0.1, no docker).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { proxyNodeBinPath, readProxyNodeArtifact } from "../../infra/payload/artifacts";
import { PROXY_NODE_BIN, PROXY_NODE_CODE_KEY, PROXY_NODE_LISTEN, proxyNodeCommand, proxyNodeRunCommand } from "../../infra/payload/balancer";
import { shellArg } from "../../infra/payload/escape";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, dockerValues, model, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { fileOf, host } from "../support/payloads";
import { freePort, get } from "../support/loopback";

const UNIT = "/etc/systemd/system/proxy-node.service";
const CONTROL = "/usr/local/sbin/proxy-node-service";

const CASES: Array<{ label: string; values: Values }> = [
  { label: "ssh, apache (proxy-node as agent)", values: sshValues({ engine: "apache" }) },
  { label: "ssh, proxy-node", values: sshValues({ engine: "proxy-node", webCount: 3 }) },
  { label: "docker, apache", values: dockerValues() },
];

function balancer(values: Values, artifact = ARTIFACTS): HostPayload {
  return host(buildPayloads(model(values), SECRETS, artifact), "balancer");
}

describe("proxy-node on the balancer: one artifact, one start command", () => {
  for (const c of CASES) {
    describe(c.label, () => {
      const b = balancer(c.values);

      it("ships proxy-node as one executable file, the built bin, and nothing else of its code", () => {
        const code = b.files.filter((f) => f.path.startsWith("/opt/proxy-node/"));
        assert.deepEqual(
          code.map((f) => [f.path, f.mode, f.content]),
          [[PROXY_NODE_BIN, "0755", ARTIFACTS]],
        );
      });

      it("the unit and the container supervisor (its start and its config check) run the bin through proxyNodeCommand(); serving clients, on ports proxy-node-listen bound", () => {
        const m = model(c.values);
        const run = proxyNodeRunCommand(m);
        const unit = fileOf(b, UNIT).content;
        assert.deepEqual(
          unit.split("\n").filter((l) => l.startsWith("ExecStart=")),
          [`ExecStart=${run}`],
        );
        const control = fileOf(b, CONTROL).content;
        assert.deepEqual(
          control.split("\n").filter((l) => /^(CMD|RUN)=/.test(l)),
          [`CMD=${shellArg(proxyNodeCommand())}`, `RUN=${shellArg(run)}`],
        );
        assert.match(control, /^ {4}\$CMD --check$/m);
        assert.match(control, /^ {4}\$RUN >>"\$LOG" 2>&1 &$/m);
        assert.ok(proxyNodeCommand().startsWith(`${PROXY_NODE_BIN} `), proxyNodeCommand());
        // The agent binds its own ports (none of them the clients'); serving clients, proxy-node takes the client ports from proxy-node-listen.
        if (m.balancer.engine === "apache") assert.equal(run, proxyNodeCommand());
        else assert.equal(run, `${PROXY_NODE_LISTEN} client=${m.balancer.httpPort} -- ${proxyNodeCommand()}`);
      });

      it("no other file spells out how to run proxy-node (node, its flags, a script path)", () => {
        for (const f of b.files.filter((x) => x.path !== PROXY_NODE_BIN)) {
          assert.doesNotMatch(f.content, /\/usr\/bin\/node|max-semi-space|cli\.js|\/opt\/proxy-node\/dist/, f.path);
          if (f.content.includes("/opt/proxy-node")) assert.ok([UNIT, CONTROL].includes(f.path), `${f.path} names proxy-node's bin`);
        }
      });

      it("the unit's stop timeout is the supervisor's bound before SIGKILL", () => {
        const timeout = /^TimeoutStopSec=(\d+)$/m.exec(fileOf(b, UNIT).content)?.[1];
        const bound = /^STOP_SECONDS=(\d+)$/m.exec(fileOf(b, CONTROL).content)?.[1];
        assert.ok(timeout && Number(timeout) > 0);
        assert.equal(bound, timeout);
      });
    });
  }

  it("the code key changes with the code and the listeners, not with a setting a SIGHUP applies; its start half only with what a handover cannot take", () => {
    const keys = (values: Values, artifact = ARTIFACTS): string[] => fileOf(balancer(values, artifact), PROXY_NODE_CODE_KEY).content.trim().split(" ");
    const key = (values: Values, artifact = ARTIFACTS): string => keys(values, artifact).join(" ");
    const start = (values: Values, artifact = ARTIFACTS): string => keys(values, artifact)[0];
    const base = sshValues({ engine: "proxy-node" });
    const edited = (change: (b: Record<string, unknown>) => void): Values => {
      const v = structuredClone(base);
      change(v.balancer as Record<string, unknown>);
      return v;
    };
    assert.equal(key(edited((b) => (b.retry = 5))), key(base), "a new retry would restart proxy-node");
    assert.equal(key(edited((b) => (b.lbmethod = "bybusyness"))), key(base));
    assert.notEqual(key(base, `${ARTIFACTS}\n// another build`), key(base), "a new build would not restart proxy-node");
    assert.notEqual(key(edited((b) => (b.httpPort = 8088))), key(base), "a new listener would not restart proxy-node");
    assert.notEqual(key(edited((b) => (b.proxyNodeWorkers = 3))), key(base), "new workers would not restart proxy-node");
    assert.equal(keys(base).length, 2);
    // A new build or new workers: a new process takes the same listeners over.
    assert.equal(start(base, `${ARTIFACTS}\n// another build`), start(base), "a new build would restart instead of handing over");
    assert.equal(start(edited((b) => (b.proxyNodeWorkers = 3))), start(base), "new workers would restart instead of handing over");
    // A new address cannot be handed over.
    assert.notEqual(start(edited((b) => (b.httpPort = 8088))), start(base), "a new listener would be handed over");
    assert.notEqual(start(edited((b) => (b.managerPort = 8089))), start(base), "a new manager port would be handed over");
  });

  it("with engine apache, Apache's start first takes the client port from a proxy-node still serving it (a switch from engine proxy-node)", () => {
    const apache = balancer(sshValues({ engine: "apache" })).services.find((s) => s.name === "apache2");
    assert.ok(apache, "no apache2 service on the balancer");
    assert.match(apache.start, /^proxy-node-service give-port && \{ .*service apache2 start; fi; \}$/);
  });

  it("an empty artifact is refused: proxy-node is not built", () => {
    assert.throws(() => balancer(sshValues(), ""), /proxy-node is not built: .*run `npm run build`/);
  });
});

describe("readProxyNodeArtifact", () => {
  it("reads the bin that proxy-node's package.json names", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-pkg-"));
    try {
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "proxy-node", bin: { "proxy-node": "out/pn.js" } }));
      fs.mkdirSync(path.join(dir, "out"));
      fs.writeFileSync(path.join(dir, "out", "pn.js"), "#!/usr/bin/env node\n// the bundle\n");
      assert.equal(readProxyNodeArtifact(dir), "#!/usr/bin/env node\n// the bundle\n");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without a build: says so, names the missing file and `npm run build`", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-pkg-"));
    try {
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "proxy-node", bin: { "proxy-node": "dist/proxy-node.js" } }));
      assert.throws(
        () => readProxyNodeArtifact(dir),
        (e: Error) => e.message === `proxy-node is not built: ${path.join(dir, "dist", "proxy-node.js")} is missing (run \`npm run build\`)`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- the container supervisor, run for real --------------------------------------

/** Stands in for proxy-node: holds the port until its drain after SIGTERM is over. */
const STAND_IN = `#!/usr/bin/env node
'use strict';
const fs = require('node:fs');
const net = require('node:net');
if (process.argv.includes('--check')) {
  if (process.env.STAND_IN_REFUSE_CHECK === '1') { console.error('config refused (stand-in)'); process.exit(1); }
  console.log('config ok (stand-in)'); process.exit(0);
}
const event = (what) => fs.appendFileSync(process.env.STAND_IN_EVENTS, process.pid + ' ' + what + '\\n');
const server = net.createServer((s) => s.end('stand-in ' + process.pid + '\\n'));
server.on('error', (e) => { event('error ' + e.code); process.exit(1); });
server.listen(Number(process.env.STAND_IN_PORT), '127.0.0.1', () => event('listening'));
process.on('SIGHUP', () => event('reload'));
process.on('SIGTERM', () => {
  event('draining');
  if (process.env.STAND_IN_IGNORE_TERM === '1') return;
  // Like proxy-node with requests in flight: the port stays taken until they are done.
  setTimeout(() => { event('exited'); process.exit(0); }, Number(process.env.STAND_IN_DRAIN_MS));
});
`;

interface Sandbox {
  dir: string;
  script: string;
  events: string;
  port: number;
  env: NodeJS.ProcessEnv;
}

/**
 * The rendered supervisor with its host paths moved into a temporary folder, the
 * stand-in as its command, and the systemd branch off. Every edit must match
 * exactly once, so a reshaped script fails here rather than running unedited.
 */
async function sandbox(
  stopSeconds: number,
  env: Record<string, string>,
  command?: (dir: string, managerPort: number) => string,
  mode = "sandbox",
  handoverSeconds = 40,
): Promise<Sandbox> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-service-"));
  const standIn = path.join(dir, "stand-in");
  fs.writeFileSync(standIn, STAND_IN, { mode: 0o755 });
  for (const step of ["admit", "retire"]) {
    fs.writeFileSync(
      `${standIn}-${step}`,
      `#!/bin/sh\necho "${step} $*" >>"$STAND_IN_EVENTS"\nif [ "${step}" = admit ] && [ "\${STAND_IN_ADMIT_FAILS:-}" = 1 ]; then echo "member lb3 did not pass (stand-in)" >&2; exit 1; fi\n`,
      { mode: 0o755 },
    );
  }
  const payload = balancer(sshValues({ engine: "proxy-node" }));
  let text = fileOf(payload, CONTROL).content;
  const listen = path.join(dir, "proxy-node-listen");
  fs.writeFileSync(listen, fileOf(payload, PROXY_NODE_LISTEN).content, { mode: 0o755 });
  const port = await freePort();
  fs.writeFileSync(path.join(dir, "code-key"), "key-one\n");
  const edits: Array<[RegExp, string]> = [
    [/^CODE_KEY_FILE=.*$/m, `CODE_KEY_FILE=${dir}/code-key`],
    [/^MANAGER_PORT=.*$/m, `MANAGER_PORT=${port}`],
    // Not serve: its start would stop this machine's Apache.
    [/^MODE=.*$/m, `MODE=${mode}`],
    [/^PIDFILE=.*$/m, `PIDFILE=${dir}/proxy-node.pid`],
    [/^SUPERVISOR_PIDFILE=.*$/m, `SUPERVISOR_PIDFILE=${dir}/proxy-node-supervisor.pid`],
    [/^LOG=.*$/m, `LOG=${dir}/proxy-node.log`],
    [/^CMD=.*$/m, `CMD=${shellArg(command ? command(dir, port) : standIn)}`],
    [/^RUN=.*$/m, `RUN=${shellArg(command ? command(dir, port) : standIn)}`],
    [/^LISTEN=.*$/m, `LISTEN=${shellArg(`${listen} client=${port}`)}`],
    [/^STOP_SECONDS=.*$/m, `STOP_SECONDS=${stopSeconds}`],
    [/^KEYFILE=.*$/m, `KEYFILE=${dir}/proxy-node.key`],
    [/^HANDOVER_SECONDS=.*$/m, `HANDOVER_SECONDS=${handoverSeconds}`],
    // What runs before a member-list change: a stand-in that records its turn (STAND_IN_ADMIT_FAILS: it fails).
    [/^ADMIT=.*$/m, `ADMIT=${standIn}-admit`],
    [/^RETIRE=.*$/m, `RETIRE=${standIn}-retire`],
    [/\[ -d \/run\/systemd\/system \]/, "false"],
  ];
  for (const [re, to] of edits) {
    assert.equal(text.match(new RegExp(re.source, `${re.flags}g`))?.length, 1, `the supervisor script has no single ${re}`);
    text = text.replace(re, to);
  }
  assert.doesNotMatch(text, /\/run\/proxy-node|\/var\/log|\/opt\/proxy-node/, "a host path is left in the sandboxed script");
  const script = path.join(dir, "proxy-node-service");
  fs.writeFileSync(script, text, { mode: 0o755 });
  const events = path.join(dir, "events");
  fs.writeFileSync(events, "");
  return {
    dir,
    script,
    events,
    port,
    env: {
      ...process.env,
      PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      STAND_IN_EVENTS: events,
      STAND_IN_PORT: String(port),
      STAND_IN_DRAIN_MS: "2000",
      ...env,
    },
  };
}

function run(sb: Sandbox, action: string): { status: number | null; out: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(sb.script, [action], { env: sb.env, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
}

/** Processes of this sandbox, from /proc: the supervisors and the stand-ins. */
function processes(sb: Sandbox): { supervisors: number[]; standIns: number[] } {
  const out = { supervisors: [] as number[], standIns: [] as number[] };
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    let argv: string[];
    try {
      if (/\) Z /.test(fs.readFileSync(`/proc/${e}/stat`, "utf8"))) continue;
      argv = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (argv.includes(sb.script) && argv.includes("supervise")) out.supervisors.push(Number(e));
    if (argv.includes(path.join(sb.dir, "stand-in"))) out.standIns.push(Number(e));
  }
  return out;
}

function events(sb: Sandbox): string[] {
  return fs.readFileSync(sb.events, "utf8").split("\n").filter(Boolean);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function answer(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let data = "";
    s.on("data", (d) => (data += d));
    s.on("end", () => resolve(data));
    s.on("error", reject);
  });
}

describe("proxy-node-service without systemd (the container supervisor)", function () {
  this.timeout(60_000);
  let sb: Sandbox | undefined;

  afterEach(() => {
    if (!sb) return;
    // Whatever a failed test left running of this sandbox (our own processes, by pid).
    const left = processes(sb);
    for (const pid of [...left.supervisors, ...left.standIns]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone already */
      }
    }
    fs.rmSync(sb.dir, { recursive: true, force: true });
    sb = undefined;
  });

  it("stale pidfiles naming another process (a container restarted, its pids reused) start proxy-node anyway and never signal that process", async () => {
    sb = await sandbox(10, {});
    const s = sb;
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      fs.writeFileSync(path.join(s.dir, "proxy-node.pid"), `${other.pid}\n`);
      fs.writeFileSync(path.join(s.dir, "proxy-node-supervisor.pid"), `${other.pid}\n`);
      assert.notEqual(run(s, "status").status, 0, "another process passed for proxy-node");
      const start = run(s, "start");
      assert.equal(start.status, 0, start.out);
      await until("proxy-node to listen", () => events(s).some((e) => e.endsWith(" listening")));
      assert.equal(run(s, "status").status, 0);
      assert.equal(run(s, "stop").status, 0);
      assert.ok(alive(other.pid as number), "stop signalled a process that is not proxy-node");
    } finally {
      other.kill("SIGKILL");
    }
  });

  it("restart waits for the draining process to exit: then one supervisor, one process, the port never found taken", async () => {
    sb = await sandbox(10, {});
    const s = sb;
    const start = run(s, "start");
    assert.equal(start.status, 0, start.out);
    await until("the first process to listen", () => events(s).some((e) => e.endsWith(" listening")));
    const first = Number(fs.readFileSync(path.join(s.dir, "proxy-node.pid"), "utf8"));
    assert.ok(alive(first));

    const restart = run(s, "restart");
    assert.equal(restart.status, 0, restart.out);
    assert.ok(!alive(first), `restart returned after ${restart.ms} ms while the old process (${first}) was still draining`);
    assert.ok(events(s).includes(`${first} exited`), events(s).join("\n"));

    // Past the drain and a few of the supervisor's restart cycles.
    await until("the new process to listen", () => events(s).filter((e) => e.endsWith(" listening")).length >= 2);
    await sleep(3000);
    const now = processes(s);
    assert.equal(now.supervisors.length, 1, `supervisors: ${now.supervisors.join(", ")}\n${events(s).join("\n")}`);
    assert.equal(now.standIns.length, 1, `processes: ${now.standIns.join(", ")}\n${events(s).join("\n")}`);
    assert.deepEqual(
      events(s).filter((e) => e.includes("error")),
      [],
      "a process found the port taken",
    );
    assert.match(await answer(s.port), new RegExp(`^stand-in ${now.standIns[0]}\\n$`));
    assert.equal(run(s, "status").status, 0);

    const stop = run(s, "stop");
    assert.equal(stop.status, 0, stop.out);
    assert.deepEqual(processes(s), { supervisors: [], standIns: [] });
    assert.notEqual(run(s, "status").status, 0);
  });

  it("apply: a new config alone is a SIGHUP to the running process; a new code key (code, unit, listeners) restarts it; a config proxy-node refuses fails apply and is not sent", async () => {
    sb = await sandbox(10, {});
    const s = sb;
    assert.equal(run(s, "start").status, 0);
    await until("the process to listen", () => events(s).some((e) => e.endsWith(" listening")));
    const first = Number(fs.readFileSync(path.join(s.dir, "proxy-node.pid"), "utf8"));
    const apply = run(s, "apply");
    assert.equal(apply.status, 0, apply.out);
    await until("the reload", () => events(s).includes(`${first} reload`));
    assert.ok(alive(first), "apply with the same code key replaced the process");
    assert.equal(processes(s).standIns.length, 1);

    // What a pulumi up with a new proxy-node build writes: another code key.
    fs.writeFileSync(path.join(s.dir, "code-key"), "key-two\n");
    const upgrade = run(s, "apply");
    assert.equal(upgrade.status, 0, upgrade.out);
    assert.ok(!alive(first), "a new code key did not replace the process");
    await until("the new process to listen", () => events(s).filter((e) => e.endsWith(" listening")).length >= 2);
    const second = Number(fs.readFileSync(path.join(s.dir, "proxy-node.pid"), "utf8"));
    assert.notEqual(second, first);
    // And from then on the new key is the running one: a config change is a SIGHUP again.
    assert.equal(run(s, "apply").status, 0);
    await until("the second process's reload", () => events(s).includes(`${second} reload`));
    assert.ok(alive(second));
    // proxy-node's own check refuses the new config: apply fails with it, and the process keeps serving.
    const refused = spawnSync(s.script, ["apply"], { env: { ...s.env, STAND_IN_REFUSE_CHECK: "1" }, encoding: "utf8" });
    assert.notEqual(refused.status, 0, "apply passed a config proxy-node refused");
    assert.match(refused.stdout + refused.stderr, /config refused \(stand-in\)/);
    assert.equal(events(s).filter((e) => e === `${second} reload`).length, 1, "a refused config was sent with SIGHUP");
    assert.ok(alive(second));
    assert.equal(run(s, "stop").status, 0);
  });

  it("apply runs admit, then retire, then the SIGHUP; a member that fails admit fails apply and nothing is sent", async () => {
    sb = await sandbox(10, {});
    const s = sb;
    assert.equal(run(s, "start").status, 0);
    await until("the process to listen", () => events(s).some((e) => e.endsWith(" listening")));
    const pid = Number(fs.readFileSync(path.join(s.dir, "proxy-node.pid"), "utf8"));
    assert.equal(run(s, "apply").status, 0);
    await until("the reload", () => events(s).includes(`${pid} reload`));
    assert.deepEqual(
      events(s).filter((e) => !e.endsWith(" listening")),
      ["admit ", "retire ", `${pid} reload`],
    );
    const refused = spawnSync(s.script, ["apply"], { env: { ...s.env, STAND_IN_ADMIT_FAILS: "1" }, encoding: "utf8" });
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /member lb3 did not pass \(stand-in\)/);
    assert.equal(events(s).filter((e) => e.endsWith(" reload")).length, 1, "a config with a member that failed admit was sent");
    assert.equal(events(s).filter((e) => e.startsWith("retire")).length, 1, "retire ran after admit failed");
    assert.ok(alive(pid));
    assert.equal(run(s, "stop").status, 0);
  });

  it("give-port (Apache's start on the balancer): stops a proxy-node whose start key is not the one on disk (an engine switch from proxy-node), and nothing else", async () => {
    sb = await sandbox(10, {}, undefined, "agent");
    const s = sb;
    fs.writeFileSync(path.join(s.dir, "code-key"), "start-one code-one\n");
    assert.equal(run(s, "give-port").status, 0, "give-port with no proxy-node running failed");
    assert.equal(run(s, "start").status, 0);
    await until("the process to listen", () => events(s).some((e) => e.endsWith(" listening")));
    const [first] = processes(s).standIns;
    // The keys it runs with: Apache's start (a repair, a reboot) leaves it alone.
    assert.equal(run(s, "give-port").status, 0);
    assert.ok(alive(first), "give-port stopped a proxy-node already running as the config on disk says");
    // The switch: proxy-node's new start key (mode agent) is on disk, its own step comes after Apache's start.
    fs.writeFileSync(path.join(s.dir, "code-key"), "start-two code-two\n");
    const give = run(s, "give-port");
    assert.equal(give.status, 0, give.out);
    assert.ok(!alive(first), "give-port left the proxy-node serving the port");
    assert.deepEqual(processes(s), { supervisors: [], standIns: [] });
  });

  it("stop is bounded: a process that ignores SIGTERM gets SIGKILL after STOP_SECONDS, and stop returns once it is gone", async () => {
    sb = await sandbox(1, { STAND_IN_IGNORE_TERM: "1" });
    const s = sb;
    assert.equal(run(s, "start").status, 0);
    await until("the process to listen", () => events(s).some((e) => e.endsWith(" listening")));
    const stop = run(s, "stop");
    assert.equal(stop.status, 0, stop.out);
    assert.match(stop.out, /did not stop within 1 s: SIGKILL/);
    assert.ok(stop.ms >= 1000 && stop.ms < 10_000, `stop took ${stop.ms} ms`);
    assert.deepEqual(processes(s), { supervisors: [], standIns: [] });
    assert.ok(
      events(s).some((e) => e.endsWith(" draining")),
      "the process was not asked to stop first",
    );
    // The port is free again.
    const again = net.createServer();
    await new Promise<void>((resolve, reject) => {
      again.on("error", reject);
      again.listen(s.port, "127.0.0.1", () => resolve());
    });
    await new Promise((r) => again.close(r));
  });

  it("a process that dies is started again by its supervisor; start while running starts nothing more", async () => {
    sb = await sandbox(10, {});
    const s = sb;
    assert.equal(run(s, "start").status, 0);
    await until("the process to listen", () => events(s).some((e) => e.endsWith(" listening")));
    assert.equal(run(s, "start").status, 0);
    const [first] = processes(s).standIns;
    process.kill(first, "SIGKILL");
    await until("a second process to listen", () => events(s).filter((e) => e.endsWith(" listening")).length === 2);
    const now = processes(s);
    assert.equal(now.supervisors.length, 1);
    assert.equal(now.standIns.length, 1);
    assert.notEqual(now.standIns[0], first);
    assert.equal(run(s, "stop").status, 0);
    assert.deepEqual(processes(s), { supervisors: [], standIns: [] });
  });
});

describe("proxy-node-service without systemd: a new code key hands over to a new proxy-node (the real bin)", function () {
  this.timeout(120_000);
  let sb: Sandbox | undefined;
  let member: http.Server | undefined;

  afterEach(async () => {
    if (sb) {
      const s = sb;
      run(s, "stop");
      // Whatever is left of this sandbox's proxy-node processes (their command line names its folder).
      for (const e of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
        try {
          if (fs.readFileSync(`/proc/${e}/cmdline`, "utf8").includes(s.dir)) process.kill(Number(e), "SIGKILL");
        } catch {
          /* gone already */
        }
      }
      fs.rmSync(s.dir, { recursive: true, force: true });
      sb = undefined;
    }
    await new Promise((r) => (member ? member.close(r) : r(undefined)));
    member = undefined;
  });

  /**
   * A member, and a sandbox whose proxy-node is the real bin with one member,
   * started as `start-one code-one`. `ownCopy`: the sandbox runs its own copy
   * of the bin (dir/proxy-node.js), which a test may overwrite as new code.
   */
  async function realBin(ownCopy: boolean, handoverSeconds = 40): Promise<{ s: Sandbox; clientPort: number; pidfile: string; first: number }> {
    member = http.createServer((_req, res) => res.end("member"));
    await new Promise<void>((r) => member?.listen(0, "127.0.0.1", r));
    const memberPort = (member.address() as net.AddressInfo).port;
    const clientPort = await freePort();
    const s = (sb = await sandbox(
      10,
      {},
      (dir, managerPort) => {
        fs.writeFileSync(
          path.join(dir, "config.json"),
          JSON.stringify({
            listen: { host: "127.0.0.1", port: clientPort },
            manager: { host: "127.0.0.1", port: managerPort, allow: ["127.0.0.0/8"], token: "sandbox-token" },
            log: { requests: false },
            balancer: { members: [{ url: `http://127.0.0.1:${memberPort}`, route: "lb1" }] },
          }),
        );
        const bin = ownCopy ? path.join(dir, "proxy-node.js") : proxyNodeBinPath();
        if (ownCopy) fs.copyFileSync(proxyNodeBinPath(), bin);
        return `${process.execPath} ${bin} --config ${dir}/config.json --pidfile ${dir}/proxy-node.pid`;
      },
      "sandbox",
      handoverSeconds,
    ));
    const pidfile = path.join(s.dir, "proxy-node.pid");
    fs.writeFileSync(path.join(s.dir, "code-key"), "start-one code-one\n");
    const start = run(s, "start");
    assert.equal(start.status, 0, start.out);
    return { s, clientPort, pidfile, first: Number(fs.readFileSync(pidfile, "utf8")) };
  }

  it("apply with new code that cannot start: the old process keeps serving, apply fails and says where to look; no restart", async () => {
    const { s, clientPort, pidfile, first } = await realBin(true, 3);
    assert.equal(await get(clientPort), "member");
    // It passes apply's --check (that catches a config, not code that dies at start), then dies.
    fs.writeFileSync(path.join(s.dir, "proxy-node.js"), 'process.exit(process.argv.includes("--check") ? 0 : 1);\n');
    fs.writeFileSync(path.join(s.dir, "code-key"), "start-one code-two\n");
    const apply = run(s, "apply");
    assert.equal(apply.status, 1, apply.out);
    assert.match(apply.out, /the new proxy-node code did not take over within 3 s; the old code \(pid \d+\) keeps serving\. See .*proxy-node\.log/);
    assert.equal(Number(fs.readFileSync(pidfile, "utf8")), first, "the pidfile no longer names the serving process");
    assert.ok(alive(first), "the old process was stopped");
    assert.equal(await get(clientPort), "member");
    assert.equal(fs.readFileSync(path.join(s.dir, "proxy-node.key"), "utf8").trim(), "start-one code-one", "the new code's key was recorded as running");
  });

  it("apply with only the code key new: the port answers throughout, the pidfile names the new process, the supervisor follows it and restarts it when it dies", async () => {
    const { s, clientPort, pidfile, first } = await realBin(false);
    let running = true;
    let sent = 0;
    const failures: string[] = [];
    const load = (async () => {
      while (running) {
        sent++;
        try {
          const body = await get(clientPort);
          if (body !== "member") failures.push(body);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    })();
    await sleep(300);
    fs.writeFileSync(path.join(s.dir, "code-key"), "start-one code-two\n");
    const apply = run(s, "apply");
    assert.equal(apply.status, 0, apply.out);
    const second = Number(fs.readFileSync(pidfile, "utf8"));
    assert.notEqual(second, first, "apply returned before a new process took over");
    assert.ok(alive(second));
    assert.equal(fs.readFileSync(path.join(s.dir, "proxy-node.key"), "utf8"), "start-one code-two\n", "the new process's keys are not recorded");
    await until("the old process to exit", () => !alive(first));
    await sleep(300);
    running = false;
    await load;
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent > 20, `too little load: ${sent}`);
    assert.equal(run(s, "status").status, 0, "status does not see the new process");
    // The same keys again: a SIGHUP to the new process, which stays.
    assert.equal(run(s, "apply").status, 0);
    assert.equal(Number(fs.readFileSync(pidfile, "utf8")), second);

    // The new process is no child of the supervisor's, which still starts one again when it dies.
    process.kill(second, "SIGKILL");
    await until("the supervisor to start proxy-node again", () => {
      const now = Number(fs.readFileSync(pidfile, "utf8"));
      return now !== second && alive(now);
    });
    // It serves again (the supervisor names it before it listens).
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal(await get(clientPort), "member");
        break;
      } catch (e) {
        if (Date.now() > end) throw e;
        await sleep(100);
      }
    }
    const stop = run(s, "stop");
    assert.equal(stop.status, 0, stop.out);
    assert.notEqual(run(s, "status").status, 0);
  });
});
