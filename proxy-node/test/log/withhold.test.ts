// The request log keeps a secret that travels in the path (Drupal's /cron/<key>)
// out of the log: log.withholdPaths.
import * as assert from "node:assert/strict";
import { ConfigError, validateConfig } from "../../src/config";
import type { Logger } from "../../src/log";
import { baseConfig, closeAll, request, startMember, startProxy } from "../helpers";

function capture(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, logger: { event() {}, request: (l) => lines.push(l) } };
}

describe("request log: withheld paths", () => {
  afterEach(closeAll);

  it("logs /cron/<key> as /cron/(withheld), and every other path as it came", async () => {
    const m = await startMember("lb1");
    const cfg = baseConfig([{ url: m.url, route: "lb1" }], { log: { requests: true, withholdPaths: ["/cron/"] } });
    const { logger, lines } = capture();
    const p = await startProxy(cfg, logger);
    const port = p.port;
    assert.equal((await request(port, { path: "/cron/s3cret-key-123" })).status, 200);
    assert.equal((await request(port, { path: "/node/1?cron=x" })).status, 200);
    assert.deepEqual(
      lines.map((l) => l.url),
      ["/cron/(withheld)", "/node/1?cron=x"],
    );
    assert.ok(!JSON.stringify(lines).includes("s3cret-key-123"), "the key is in the request log");
    assert.deepEqual(
      m.seen.map((r) => r.url),
      ["/cron/s3cret-key-123", "/node/1?cron=x"],
      "the member must still get the whole path",
    );
  });

  it("refuses a prefix that is not an absolute path, naming the key", () => {
    for (const bad of ["cron/", "/cron /", "/a?b", 7]) {
      assert.throws(
        () => validateConfig({ balancer: { members: [{ url: "http://127.0.0.1:1", route: "a" }] }, log: { withholdPaths: [bad as string] } }),
        (e: unknown) => e instanceof ConfigError && e.key === "log.withholdPaths[0]",
        String(bad),
      );
    }
  });
});
