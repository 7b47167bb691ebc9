import { strict as assert } from "node:assert";
import { Member } from "../../src/members";
import { ByBusyness } from "../../src/strategies/bybusyness";
import { ByTraffic } from "../../src/strategies/bytraffic";

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

describe("unit: bybusyness", () => {
  it("picks the member with the fewest requests in flight", () => {
    const ms = members([1, 1, 1]);
    ms[0].busy = 5;
    ms[1].busy = 1;
    ms[2].busy = 3;
    assert.equal(new ByBusyness().pick(ms)?.route, "lb2");
    ms.forEach((m) => m.destroy());
  });
  it("equally busy members alternate by weight like byrequests", () => {
    const ms = members([1, 1]);
    const s = new ByBusyness();
    assert.deepEqual(
      [0, 1, 2, 3].map(() => s.pick(ms)?.route),
      ["lb1", "lb2", "lb1", "lb2"],
    );
    ms.forEach((m) => m.destroy());
  });
});

describe("unit: bytraffic", () => {
  it("picks the member with the least traffic per lbfactor", () => {
    const ms = members([1, 4]);
    ms[0].bytesIn = 1000;
    ms[1].bytesIn = 3000; // 750 per lbfactor
    assert.equal(new ByTraffic().pick(ms)?.route, "lb2");
    ms[1].bytesOut = 2000; // (3000+2000)/4 = 1250 > 1000
    assert.equal(new ByTraffic().pick(ms)?.route, "lb1");
    ms.forEach((m) => m.destroy());
  });
  it("ties go to the first member", () => {
    const ms = members([1, 1]);
    assert.equal(new ByTraffic().pick(ms)?.route, "lb1");
    ms.forEach((m) => m.destroy());
  });
});
