import { strict as assert } from "node:assert";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { startMember, startProxy, baseConfig, request, closeAll, until, sleep } from "../helpers";

describe("fault: member failures", () => {
  afterEach(closeAll);

  it("member killed under steady load: zero failed GETs", async function () {
    this.timeout(30_000);
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig([
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2" },
      ]),
    );
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const worker = async (i: number): Promise<void> => {
      while (!stop) {
        try {
          const r = await request(app.port, { path: `/w${i}`, agent, headers: i % 2 ? { Cookie: "BALANCEID=balancer.lb2" } : {} });
          if (r.status === 200) ok++;
          else failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    };
    const workers = Array.from({ length: 16 }, (_, i) => worker(i));
    await until(() => ok > 300, "steady load");
    await lb2.kill();
    const atKill = ok;
    await until(() => ok > atKill + 1000, "load after the kill", 20_000);
    stop = true;
    await Promise.all(workers);
    agent.destroy();
    assert.deepEqual(failures, []);
    assert.ok(app.balancer.members[1].inError, "lb2 is marked in error");
  });

  it("connect refused: the request is retried on the other member, which answers", async () => {
    const lb1 = await startMember("lb1");
    // A port with nothing listening.
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const app = await startProxy(
      baseConfig([
        { url: `http://127.0.0.1:${deadPort}`, route: "dead" },
        { url: lb1.url, route: "lb1" },
      ]),
    );
    const r = await request(app.port, { path: "/", method: "POST", body: "form=1", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb1");
    assert.equal(lb1.seen[0].body, "form=1");
    assert.equal(app.balancer.members[0].state(Date.now()), "error");
  });

  it("a POST whose body was sent is not retried when the member resets before answering", async () => {
    let lb1Hits = 0;
    const lb1 = await startMember("lb1", (req) => {
      lb1Hits++;
      req.socket.destroy();
    });
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig([
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2" },
      ]),
    );
    const r = await request(app.port, {
      path: "/",
      method: "POST",
      body: "order=1",
      headers: { Cookie: "BALANCEID=balancer.lb1", "Content-Type": "text/plain" },
    });
    assert.equal(r.status, 502);
    assert.equal(lb1Hits, 1);
    assert.equal(lb2.seen.length, 0);
  });

  it("a GET reset before any response byte is retried on another member", async () => {
    const lb1 = await startMember("lb1", (req) => req.socket.destroy());
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig([
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2" },
      ]),
    );
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb1" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb2");
  });

  it("a member dying mid-response: the client sees a cut response, not a wrong one", async () => {
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(200, { "Content-Length": "100" });
      res.write("partial");
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    await assert.rejects(request(app.port, { path: "/" }));
    // The proxy keeps serving.
    assert.equal(app.balancer.members[0].busy, 0);
  });

  it("a member in error is tried again after `retry` seconds", async function () {
    this.timeout(10_000);
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2", (req) => req.socket.destroy());
    const app = await startProxy(
      baseConfig([
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2", retry: 1 },
      ]),
    );
    await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(app.balancer.members[1].state(Date.now()), "error");
    const before = lb2.seen.length;
    await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(lb2.seen.length, before, "not tried while in error");
    await sleep(1100);
    await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(lb2.seen.length, before + 1, "tried again after retry");
  });
});

describe("fault: active health checks", () => {
  afterEach(closeAll);

  it("a member failing its health check stops getting clients, and comes back after `rise` good checks", async function () {
    this.timeout(15_000);
    let healthy = true;
    const handler =
      (route: string) =>
      (req: http.IncomingMessage, res: http.ServerResponse): void => {
        if (req.url === "/health") {
          res.writeHead(route === "lb2" && !healthy ? 500 : 200);
          return void res.end();
        }
        res.end(route);
      };
    const lb1 = await startMember("lb1", handler("lb1"));
    const lb2 = await startMember("lb2", handler("lb2"));
    const app = await startProxy(
      baseConfig(
        [
          { url: lb1.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        {},
        {
          healthCheck: { path: "/health", intervalMs: 100, expect: 200, rise: 2, fall: 2, timeoutMs: 1000 },
        },
      ),
    );
    healthy = false;
    await until(() => app.balancer.members[1].hcFail, "lb2 marked failed");
    for (let i = 0; i < 4; i++) assert.equal((await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } })).body, "lb1");
    healthy = true;
    await until(() => !app.balancer.members[1].hcFail, "lb2 back");
    assert.equal((await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } })).body, "lb2");
  });
});
