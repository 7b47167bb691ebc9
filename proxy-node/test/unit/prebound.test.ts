import assert from "node:assert/strict";
import { PREBOUND_ENV, takePrebound } from "../../src/prebound";

describe("listeners bound before the start (PROXY_NODE_LISTEN_FDS)", () => {
  it("reads the descriptors by listener name and takes the variable out of the environment", () => {
    const env: NodeJS.ProcessEnv = { [PREBOUND_ENV]: '{"client":3,"https":4}' };
    assert.deepEqual(takePrebound(env), { client: 3, https: 4 });
    assert.equal(env[PREBOUND_ENV], undefined, "a cluster worker or a successor would read it again");
  });

  it("without the variable, nothing", () => {
    assert.deepEqual(takePrebound({}), {});
  });

  for (const [raw, why] of [
    ["3", /not an object of listener names and descriptors/],
    ["{not json", /not an object/],
    ['{"admin":3}', /unknown listener "admin" \(client, https, manager\)/],
    ['{"client":1}', /the descriptor of "client" is not a whole number from 3/],
    ['{"client":"3"}', /the descriptor of "client" is not a whole number from 3/],
    ['{"client":3.5}', /the descriptor of "client" is not a whole number from 3/],
  ] as const) {
    it(`refuses ${raw}, naming the variable and what is wrong`, () => {
      assert.throws(
        () => takePrebound({ [PREBOUND_ENV]: raw }),
        (e: Error) => e.message.startsWith(`${PREBOUND_ENV}=${raw}: `) && why.test(e.message),
      );
    });
  }
});
