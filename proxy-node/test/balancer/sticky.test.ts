import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, request, closeAll } from "../helpers";

async function two(balancer: Record<string, unknown> = {}, m2: Record<string, unknown> = {}) {
  const lb1 = await startMember("lb1");
  const lb2 = await startMember("lb2");
  const app = await startProxy(
    baseConfig(
      [
        { url: lb1.url, route: "lb1" },
        { url: lb2.url, route: "lb2", ...m2 },
      ],
      {},
      balancer,
    ),
  );
  return { lb1, lb2, app };
}

describe("balancer: sticky sessions", () => {
  afterEach(closeAll);

  it("a client with BALANCEID=balancer.lb2 always reaches lb2", async () => {
    const { app } = await two();
    for (let i = 0; i < 10; i++) {
      const r = await request(app.port, { path: "/", headers: { Cookie: "has_js=1; BALANCEID=balancer.lb2" } });
      assert.equal(r.body, "lb2");
    }
  });

  it("clients without a cookie are spread over both members, one after the other", async () => {
    const { app } = await two();
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push((await request(app.port, { path: "/" })).body);
    assert.deepEqual(seen, ["lb1", "lb2", "lb1", "lb2"]);
  });

  it("a new client keeps the member that stamped its cookie", async () => {
    const { app } = await two();
    const first = await request(app.port, { path: "/" });
    const cookie = String(first.headers["set-cookie"]?.[0]).split(";")[0];
    for (let i = 0; i < 5; i++) assert.equal((await request(app.port, { path: "/", headers: { Cookie: cookie } })).body, first.body);
  });

  it('BALANCEID=a.b.lb2 does not reach lb2 (route is "b.lb2", like Apache) and is served anyway', async () => {
    const { app } = await two();
    const bodies = new Set<string>();
    for (let i = 0; i < 4; i++) bodies.add((await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=a.b.lb2" } })).body);
    assert.deepEqual([...bodies].sort(), ["lb1", "lb2"]);
  });

  it("a URL parameter wins over the cookie by default, like Apache", async () => {
    const { app } = await two();
    const r = await request(app.port, { path: "/?BALANCEID=balancer.lb1", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(r.body, "lb1");
  });

  it("trustCookieOnly: the URL parameter cannot choose the member", async () => {
    const { app } = await two({ trustCookieOnly: true });
    const r = await request(app.port, { path: "/?BALANCEID=balancer.lb1", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(r.body, "lb2");
  });

  it("JSESSIONID|jsessionid: ;jsessionid= in the path picks the member", async () => {
    const { app } = await two({ stickysession: "JSESSIONID|jsessionid" });
    assert.equal((await request(app.port, { path: "/cart;jsessionid=XYZ.lb2" })).body, "lb2");
    assert.equal((await request(app.port, { path: "/", headers: { Cookie: "JSESSIONID=XYZ.lb1" } })).body, "lb1");
  });

  it("the sticky member is down: the client fails over to another member", async () => {
    const { app, lb2 } = await two();
    await lb2.kill();
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb1");
  });

  it("nofailover: the sticky member is down, the client gets 503 and no other member is used", async () => {
    const { app, lb1, lb2 } = await two({ nofailover: true });
    await lb2.kill();
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(r.status, 503);
    assert.equal(lb1.seen.length, 0);
  });

  it("draining member: its sticky clients stay, new clients go elsewhere", async () => {
    const { app } = await two({}, { status: "draining" });
    assert.equal((await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } })).body, "lb2");
    for (let i = 0; i < 3; i++) assert.equal((await request(app.port, { path: "/" })).body, "lb1");
  });

  it("weights 3:1 send three of every four new clients to lb1", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const app = await startProxy(
      baseConfig([
        { url: lb1.url, route: "lb1", lbfactor: 3 },
        { url: lb2.url, route: "lb2", lbfactor: 1 },
      ]),
    );
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) seen.push((await request(app.port, { path: "/" })).body);
    assert.deepEqual(seen, ["lb1", "lb1", "lb2", "lb1", "lb1", "lb1", "lb2", "lb1"]);
  });
});

describe("balancer: proxy-node sets the sticky cookie (setCookie)", () => {
  afterEach(closeAll);

  it("members that set no cookie: the client gets BALANCEID=balancer.<route> and then sticks", async () => {
    const lb1 = await startMember("lb1", undefined, false);
    const lb2 = await startMember("lb2", undefined, false);
    const app = await startProxy(
      baseConfig(
        [
          { url: lb1.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        {},
        { setCookie: { path: "/" } },
      ),
    );
    const first = await request(app.port, { path: "/" });
    const sc = first.headers["set-cookie"] ?? [];
    assert.equal(sc.length, 1);
    assert.match(sc[0], new RegExp(`^BALANCEID=balancer\\.${first.body}; Path=/`));
    const again = await request(app.port, { path: "/", headers: { Cookie: sc[0].split(";")[0] } });
    assert.equal(again.body, first.body);
    assert.equal(again.headers["set-cookie"], undefined);
  });

  it("a member that sets the cookie itself is not overridden", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], {}, { setCookie: {} }));
    const r = await request(app.port, { path: "/" });
    assert.deepEqual(r.headers["set-cookie"], ["BALANCEID=balancer.lb1; path=/"]);
  });

  it("after failover the cookie is re-issued for the member that served", async () => {
    const lb1 = await startMember("lb1", undefined, false);
    const lb2 = await startMember("lb2", undefined, false);
    const app = await startProxy(
      baseConfig(
        [
          { url: lb1.url, route: "lb1" },
          { url: lb2.url, route: "lb2" },
        ],
        {},
        { setCookie: {} },
      ),
    );
    await lb2.kill();
    const r = await request(app.port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(r.body, "lb1");
    assert.match(String(r.headers["set-cookie"]?.[0]), /^BALANCEID=balancer\.lb1;/);
  });
});
