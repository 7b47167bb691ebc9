/**
 * proxy-node-listen, run for real locally (perl, the real proxy-node bin, 127.0.0.1):
 * it binds the client port with SO_REUSEPORT and runs proxy-node on it, so a
 * second engine can bind beside the one serving while the engine switches; its
 * --probe tells the service script whether that is possible.
 */
import assert from "node:assert/strict";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { proxyNodeBinPath } from "../../infra/payload/artifacts";
import { PROXY_NODE_LISTEN } from "../../infra/payload/balancer";
import { buildPayloads } from "../../infra/payload/index";
import { model, SECRETS, ARTIFACTS, sshValues } from "../support/cluster-configs";
import { fileOf, host } from "../support/payloads";
import { freePort, get } from "../support/loopback";

/** Resolves once `port` answers, rejects after `ms`. */
async function answering(port: number, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; ;) {
    try {
      await get(port);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function exited(p: ChildProcess): Promise<void> {
  return new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once("exit", () => r())));
}

describe("proxy-node-listen: the client port shared while the engine switches (perl, the real bin)", function () {
  this.timeout(60_000);
  let dir = "";
  let script = "";
  let member: http.Server | undefined;
  let memberPort = 0;
  const started: ChildProcess[] = [];
  const holders: net.Server[] = [];
  const forwardedFor: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-listen-"));
    script = path.join(dir, "proxy-node-listen");
    const payload = host(buildPayloads(model(sshValues({ engine: "proxy-node" })), SECRETS, ARTIFACTS), "balancer");
    const f = fileOf(payload, PROXY_NODE_LISTEN);
    assert.equal(f.mode, "0755");
    fs.writeFileSync(script, f.content, { mode: 0o755 });
    member = http.createServer((req, res) => {
      forwardedFor.push(String(req.headers["x-forwarded-for"]));
      res.end("member");
    });
    await new Promise<void>((r) => member?.listen(0, "127.0.0.1", r));
    memberPort = (member.address() as net.AddressInfo).port;
  });

  afterEach(async () => {
    for (const p of started.splice(0)) {
      p.kill("SIGKILL");
      await exited(p);
    }
    for (const h of holders.splice(0)) await new Promise((r) => h.close(r));
  });

  after(async () => {
    await new Promise((r) => (member ? member.close(r) : r(undefined)));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const probe = (port: number): { status: number | null; out: string } => {
    const r = spawnSync(script, ["--probe", `client=${port}`], { encoding: "utf8" });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };

  /** The real bin through proxy-node-listen on `port`; its own manager port, so two can run side by side. */
  async function proxyNode(name: string, port: number): Promise<ChildProcess> {
    const config = path.join(dir, `${name}.json`);
    fs.writeFileSync(
      config,
      JSON.stringify({
        // What the balancer's config says; the descriptor it is given is [::] taking IPv4 too, like Apache's `Listen <port>`.
        listen: { host: "0.0.0.0", port },
        manager: { host: "127.0.0.1", port: await freePort(), allow: ["127.0.0.0/8"], token: "listen-test" },
        log: { requests: false },
        balancer: { members: [{ url: `http://127.0.0.1:${memberPort}`, route: "lb1" }] },
      }),
    );
    const p = spawn(script, [`client=${port}`, "--", process.execPath, proxyNodeBinPath(), "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
    started.push(p);
    return p;
  }

  it("--probe: a free port and one held by a listener that shares it pass; one held without SO_REUSEPORT fails, naming the port", async () => {
    const port = await freePort();
    assert.deepEqual(probe(port), { status: 0, out: "" });
    const plain = net.createServer();
    holders.push(plain);
    await new Promise<void>((r) => plain.listen(port, "::", r));
    const held = probe(port);
    assert.equal(held.status, 1, held.out);
    assert.match(held.out, new RegExp(`port ${port} \\(client\\) is held by a listener that does not share it \\(no SO_REUSEPORT\\)`));
  });

  it("runs proxy-node on the port it bound; a second one binds beside it; the first stops and the port answers throughout; X-Forwarded-For is the IPv4 client", async () => {
    const port = await freePort();
    const a = await proxyNode("a", port);
    await answering(port);
    assert.equal(await get(port), "member");
    assert.equal(probe(port).status, 0, "a second engine could not bind beside proxy-node");
    const b = await proxyNode("b", port);
    // Both hold the port now: b's start does not fail on it.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(b.exitCode, null, "the second proxy-node exited: it could not bind beside the first");
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) answers.push(await get(port));
    a.kill("SIGTERM");
    await exited(a);
    // Only b is left on the port.
    for (let i = 0; i < 20; i++) answers.push(await get(port));
    assert.deepEqual(new Set(answers), new Set(["member"]));
    assert.equal(b.exitCode, null);
    // The socket is [::] taking IPv4 too: the web server must still see the client as the IPv4 address it is.
    assert.deepEqual(new Set(forwardedFor), new Set(["127.0.0.1"]), "X-Forwarded-For carries the IPv4-mapped form");
  });

  it("a bad argument is an error naming it, and runs nothing", () => {
    const r = spawnSync(script, ["client=http", "--", "/bin/true"], { encoding: "utf8" });
    assert.equal(r.status, 255);
    assert.match(r.stderr, /'client=http' is not client=<port> or https=<port>/);
  });
});
