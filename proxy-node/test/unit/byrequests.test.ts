import { strict as assert } from "node:assert";
import { Member } from "../../src/members";
import { ByRequests } from "../../src/strategies/byrequests";

function members(weights: number[]): Member[] {
  return weights.map(
    (w, i) =>
      new Member({
        url: `http://127.0.0.1:${1000 + i}`,
        host: "127.0.0.1",
        port: 1000 + i,
        route: `lb${i + 1}`,
        lbfactor: w,
        retry: 10,
        status: "enabled",
        maxSockets: 1,
        maxQueue: 0,
      }),
  );
}

function sequence(weights: number[], n: number): string[] {
  const ms = members(weights);
  const s = new ByRequests();
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((s.pick(ms) as Member).route);
  ms.forEach((m) => m.destroy());
  return out;
}

describe("unit: byrequests (Apache mod_lbmethod_byrequests)", () => {
  it("[1,1] alternates, first member first", () => {
    assert.deepEqual(sequence([1, 1], 6), ["lb1", "lb2", "lb1", "lb2", "lb1", "lb2"]);
  });

  it("[3,1] gives Apache's sequence lb1 lb1 lb2 lb1, repeating", () => {
    // lbstatus after +lbfactor: (3,1)->lb1 pays 4: (-1,1); (2,2) tie -> first: (-2,2);
    // (1,3)->lb2: (1,-1); (4,0)->lb1: (0,0) and the cycle restarts.
    assert.deepEqual(sequence([3, 1], 8), ["lb1", "lb1", "lb2", "lb1", "lb1", "lb1", "lb2", "lb1"]);
  });

  it("[1,2,3] shares requests 1:2:3 in every cycle of 6", () => {
    const s = sequence([1, 2, 3], 60);
    for (let c = 0; c < 60; c += 6) {
      const cycle = s.slice(c, c + 6);
      assert.deepEqual(
        ["lb1", "lb2", "lb3"].map((r) => cycle.filter((x) => x === r).length),
        [1, 2, 3],
      );
    }
  });

  it("sticky requests count too: after a sticky burst to lb1 the next free choices go to lb2", () => {
    const ms = members([1, 1]);
    const s = new ByRequests();
    for (let i = 0; i < 3; i++) s.stickyChosen(ms[0], ms);
    const next = [0, 1, 2].map(() => (s.pick(ms) as Member).route);
    assert.deepEqual(next, ["lb2", "lb2", "lb2"]);
    ms.forEach((m) => m.destroy());
  });

  it("no candidates: nothing", () => assert.equal(new ByRequests().pick([]), undefined));
});
