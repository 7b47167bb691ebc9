import { strict as assert } from "node:assert";
import { Balancer } from "../../src/balancer";
import { validateConfig, MemberStatus } from "../../src/config";

function balancer(statuses: MemberStatus[], extra: Record<string, unknown> = {}): Balancer {
  const cfg = validateConfig({
    balancer: { members: statuses.map((status, i) => ({ url: `http://127.0.0.1:${2000 + i}`, route: `lb${i + 1}`, status, retry: 10 })), ...extra },
  });
  return new Balancer(cfg.balancer);
}

function routes(b: Balancer, cookie: string | undefined, n: number, now = 1000): Array<string | null> {
  const out: Array<string | null> = [];
  for (let i = 0; i < n; i++) out.push(b.choose("/", cookie, null, now).member?.route ?? null);
  return out;
}

describe("unit: member states and stickiness together", () => {
  afterEach(() => undefined);

  it("a sticky cookie for lb2 always chooses lb2", () => {
    const b = balancer(["enabled", "enabled"]);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb2", 5), ["lb2", "lb2", "lb2", "lb2", "lb2"]);
    b.destroy();
  });

  it("a route naming no member is treated as non-sticky", () => {
    const b = balancer(["enabled", "enabled"]);
    const c = b.choose("/", "BALANCEID=a.b.lb2", null, 0);
    assert.equal(c.sticky, false);
    assert.equal(c.route, "b.lb2");
    assert.equal(c.member?.route, "lb1");
    b.destroy();
  });

  it("draining: only its sticky clients", () => {
    const b = balancer(["draining", "enabled"]);
    assert.deepEqual(routes(b, undefined, 3), ["lb2", "lb2", "lb2"]);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb1", 2), ["lb1", "lb1"]);
    b.destroy();
  });

  it("disabled: no requests at all; its sticky clients fail over (Apache 2.4)", () => {
    const b = balancer(["disabled", "enabled"]);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb1", 2), ["lb2", "lb2"]);
    b.destroy();
  });

  it("stopped: nothing; with nofailover its sticky clients get no member", () => {
    const b = balancer(["stopped", "enabled"], { nofailover: true });
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb1", 1), [null]);
    assert.deepEqual(routes(b, undefined, 2), ["lb2", "lb2"]);
    b.destroy();
  });

  it("hot standby is used only when no other member is usable", () => {
    const b = balancer(["enabled", "standby"]);
    assert.deepEqual(routes(b, undefined, 3), ["lb1", "lb1", "lb1"]);
    b.members[0].status = "stopped";
    assert.deepEqual(routes(b, undefined, 2), ["lb2", "lb2"]);
    b.destroy();
  });

  it("a member in error is skipped until `retry` seconds passed, then tried again", () => {
    const b = balancer(["enabled", "enabled"]);
    b.members[0].markError(1000);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb1", 2, 5000), ["lb2", "lb2"]);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb1", 1, 11_001), ["lb1"]);
    b.destroy();
  });

  it("every member in error: all are tried again at once (Apache's forcerecovery), a sticky client's too; one member usable: no recovery forced", () => {
    const b = balancer(["enabled", "enabled"]);
    b.members[0].markError(1000);
    b.members[1].markError(1000);
    assert.deepEqual(routes(b, undefined, 2, 2000), ["lb1", "lb2"]);
    b.members[0].markError(3000);
    b.members[1].markError(3000);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb2", 1, 3000), ["lb2"]);
    // One member in error, the other fine: the errored one waits for its retry.
    b.members[0].markError(4000);
    assert.deepEqual(routes(b, "BALANCEID=balancer.lb1", 2, 5000), ["lb2", "lb2"]);
    assert.equal(b.members[0].inError, true);
    b.destroy();
  });

  it("a member failing its health check or disabled is not in error: the others' errors are not forced away", () => {
    const b = balancer(["enabled", "disabled"]);
    b.members[0].markError(1000);
    // lb2 is disabled, not in error: Apache forces recovery only when every worker is in error.
    assert.deepEqual(routes(b, undefined, 1, 2000), [null]);
    b.destroy();
  });

  it("retries exclude members already tried", () => {
    const b = balancer(["enabled", "enabled", "enabled"]);
    const c = b.choose("/", "BALANCEID=balancer.lb1", [b.members[0]], 0);
    assert.equal(c.sticky, false);
    assert.notEqual(c.member?.route, "lb1");
    b.destroy();
  });
});
