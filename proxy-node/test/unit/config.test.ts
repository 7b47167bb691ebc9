import { strict as assert } from "node:assert";
import { availableParallelism } from "node:os";
import { autoWorkers, validateConfig } from "../../src/config";

const ok = { balancer: { members: [{ url: "http://lb1:80", route: "lb1" }] } };

function error(raw: unknown): string {
  try {
    validateConfig(raw);
  } catch (e) {
    return (e as Error).message;
  }
  return "no error";
}

describe("unit: config validation", () => {
  it("a minimal config gets the documented defaults", () => {
    const c = validateConfig(ok);
    assert.equal(c.mode, "serve");
    assert.equal(c.balancer.stickysession, "BALANCEID");
    assert.equal(c.balancer.stickysessionsep, ".");
    assert.equal(c.balancer.lbmethod, "byrequests");
    assert.equal(c.balancer.members[0].lbfactor, 1);
    assert.equal(c.balancer.members[0].status, "enabled");
    assert.equal(c.log.requests, true);
    assert.equal(c.workers, 1);
  });

  it('workers: an integer 1-64 as given; "auto" becomes the cores available, at most 64', () => {
    assert.equal(validateConfig({ ...ok, workers: 1 }).workers, 1);
    assert.equal(validateConfig({ ...ok, workers: 4 }).workers, 4);
    assert.equal(validateConfig({ ...ok, workers: 64 }).workers, 64);
    const auto = validateConfig({ ...ok, workers: "auto" }).workers;
    assert.ok(Number.isInteger(auto) && auto >= 1 && auto <= 64, String(auto));
    assert.equal(auto, Math.min(availableParallelism(), 64));
    assert.equal(autoWorkers(1), 1);
    assert.equal(autoWorkers(2), 2);
    assert.equal(autoWorkers(64), 64);
    assert.equal(autoWorkers(65), 64);
    assert.equal(autoWorkers(256), 64);
    assert.equal(autoWorkers(0), 1);
  });

  it("workers: anything else names the key and what is accepted", () => {
    for (const bad of [0, 65, -2, 1.5, "2", "Auto", "auto ", "", null, true, [2], { n: 2 }]) {
      assert.equal(
        error({ ...ok, workers: bad }),
        `config: workers: expected an integer from 1 to 64 or "auto", got ${JSON.stringify(bad)}`,
        `workers: ${JSON.stringify(bad)}`,
      );
    }
  });

  it("a bad member URL names the key", () => {
    assert.equal(
      error({
        balancer: {
          members: [
            { url: "http://lb1:80", route: "lb1" },
            { url: "ftp://x", route: "lb2" },
          ],
        },
      }),
      'config: balancer.members[1].url: expected http://host:port, got "ftp://x"',
    );
  });

  it("unknown keys are refused, naming them", () => {
    assert.match(error({ ...ok, lisen: {} }), /^config: lisen: unknown key/);
    assert.match(error({ balancer: { members: [{ url: "http://lb1:80", route: "lb1", weight: 2 }] } }), /^config: balancer\.members\[0\]\.weight: unknown key/);
  });

  it("wrong types and ranges name the key", () => {
    assert.match(error({ ...ok, listen: { port: "eighty" } }), /^config: listen\.port: expected an integer/);
    assert.match(error({ balancer: { lbmethod: "random", members: ok.balancer.members } }), /^config: balancer\.lbmethod: expected one of/);
    assert.match(error({ balancer: { members: [{ url: "http://lb1:80", route: "lb1", status: "up" }] } }), /^config: balancer\.members\[0\]\.status/);
    assert.match(error({ balancer: { members: [] } }), /^config: balancer\.members: expected a non-empty list/);
    assert.match(error({ ...ok, manager: { port: 1, allow: ["300.0.0.0/8"], token: "secretsecret" } }), /^config: manager\.allow\[0\]/);
    assert.match(error({ ...ok, manager: { port: 1, allow: ["127.0.0.0/8"], token: "x" } }), /^config: manager\.token/);
  });

  it("duplicate routes and routes containing the separator are refused", () => {
    assert.match(
      error({
        balancer: {
          members: [
            { url: "http://a:1", route: "lb1" },
            { url: "http://b:1", route: "lb1" },
          ],
        },
      }),
      /members\[1\]\.route: duplicate/,
    );
    assert.match(error({ balancer: { members: [{ url: "http://a:1", route: "web.lb1" }] } }), /members\[0\]\.route: must not contain/);
  });

  it("agent mode needs apache and a health check", () => {
    assert.match(error({ ...ok, mode: "agent" }), /^config: apache: required/);
  });
});
