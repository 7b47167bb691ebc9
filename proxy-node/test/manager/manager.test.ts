import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, request, closeAll } from "../helpers";

const TOKEN = "test-token-123";

async function setup(allow = ["127.0.0.0/8"]) {
  const lb1 = await startMember("lb1");
  const lb2 = await startMember("lb2");
  const app = await startProxy(
    baseConfig(
      [
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2" },
      ],
      {
        manager: { host: "127.0.0.1", port: 0, allow, token: TOKEN },
      },
    ),
  );
  return { lb1, lb2, app };
}

const bearer = { Authorization: `Bearer ${TOKEN}` };

function post(port: number, route: string, body: unknown, headers: Record<string, string> = { ...bearer, "Content-Type": "application/json" }) {
  return request(port, { method: "POST", path: `/api/members/${route}`, headers, body: JSON.stringify(body) });
}

describe("manager: API, page and metrics", () => {
  afterEach(closeAll);

  it("lists members with route, state, lbfactor and counters", async () => {
    const { app } = await setup();
    await request(app.port, { path: "/" });
    const r = await request(app.managerPort, { path: "/api/members", headers: bearer });
    assert.equal(r.status, 200);
    const j = JSON.parse(r.body) as { members: Array<Record<string, unknown>> };
    assert.deepEqual(
      j.members.map((m) => [m.route, m.state, m.lbfactor]),
      [
        ["lb1", "ok", 1],
        ["lb2", "ok", 1],
      ],
    );
    assert.equal(j.members[0].requests, 1);
    assert.ok((j.members[0].bytesIn as number) > 0);
  });

  it("disabling lb2 live sends its sticky clients elsewhere; enabling brings them back", async () => {
    const { app } = await setup();
    const sticky = { Cookie: "BALANCEID=balancer.lb2" };
    assert.equal((await request(app.port, { path: "/", headers: sticky })).body, "lb2");
    assert.equal((await post(app.managerPort, "lb2", { status: "disabled" })).status, 200);
    assert.equal((await request(app.port, { path: "/", headers: sticky })).body, "lb1");
    assert.equal((await post(app.managerPort, "lb2", { status: "enabled" })).status, 200);
    assert.equal((await request(app.port, { path: "/", headers: sticky })).body, "lb2");
  });

  it("changing lbfactor and route live", async () => {
    const { app } = await setup();
    assert.equal((await post(app.managerPort, "lb1", { lbfactor: 3 })).status, 200);
    const seq: string[] = [];
    for (let i = 0; i < 4; i++) seq.push((await request(app.port, { path: "/" })).body);
    assert.deepEqual(seq, ["lb1", "lb1", "lb2", "lb1"]);
    assert.equal((await post(app.managerPort, "lb2", { route: "web2" })).status, 200);
    assert.equal((await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.web2" } })).body, "lb2");
  });

  it("bad changes are refused with 400 and change nothing", async () => {
    const { app } = await setup();
    assert.equal((await post(app.managerPort, "lb1", { lbfactor: 0 })).status, 400);
    assert.equal((await post(app.managerPort, "lb1", { status: "up" })).status, 400);
    assert.equal((await post(app.managerPort, "lb1", { route: "lb2" })).status, 400);
    assert.equal((await post(app.managerPort, "nope", { lbfactor: 2 })).status, 404);
    assert.equal(app.balancer.members[0].lbfactor, 1);
  });

  it("no token, wrong token: 401", async () => {
    const { app } = await setup();
    assert.equal((await request(app.managerPort, { path: "/api/members" })).status, 401);
    assert.equal((await request(app.managerPort, { path: "/api/members", headers: { Authorization: "Bearer wrong-token" } })).status, 401);
  });

  it("a cross-site form POST cannot change anything (no Bearer header, form content type, cookies ignored)", async () => {
    const { app } = await setup();
    const basic = `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}`;
    // A browser would attach Basic credentials and cookies to a cross-site form post.
    const r1 = await request(app.managerPort, {
      method: "POST",
      path: "/api/members/lb1",
      headers: { Authorization: basic, Cookie: `token=${TOKEN}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: "status=stopped",
    });
    assert.equal(r1.status, 401);
    const r2 = await post(app.managerPort, "lb1", { status: "stopped" }, { ...bearer, "Content-Type": "text/plain" });
    assert.equal(r2.status, 415);
    assert.equal(app.balancer.members[0].status, "enabled");
  });

  it("manager is not reachable from outside the allowlist, even with the token", async () => {
    const { app } = await setup(["10.0.0.0/8"]);
    const r = await request(app.managerPort, { path: "/api/members", headers: bearer });
    assert.equal(r.status, 403);
    const p = await post(app.managerPort, "lb1", { status: "stopped" });
    assert.equal(p.status, 403);
    assert.equal(app.balancer.members[0].status, "enabled");
  });

  it("the HTML page lists the members (Basic auth with the token for browsers)", async () => {
    const { app } = await setup();
    const basic = `Basic ${Buffer.from(`admin:${TOKEN}`).toString("base64")}`;
    const r = await request(app.managerPort, { path: "/", headers: { Authorization: basic } });
    assert.equal(r.status, 200);
    assert.match(r.body, /<td>lb1<\/td>/);
    assert.match(r.body, /<td>lb2<\/td>/);
    assert.equal(r.headers["x-frame-options"], "DENY");
  });

  it("Prometheus /metrics counts requests per member", async () => {
    const { app } = await setup();
    for (let i = 0; i < 3; i++) await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    const r = await request(app.managerPort, { path: "/metrics", headers: bearer });
    assert.equal(r.status, 200);
    assert.match(r.body, /proxy_node_member_requests_total\{balancer="drupal",route="lb2",state="ok"\} 3/);
    assert.match(r.body, /proxy_node_responses_total\{code="2xx"\} 3/);
  });
});
