import { strict as assert } from "node:assert";
import * as net from "node:net";
import { startMember, startProxy, baseConfig, request, closeAll } from "../helpers";

/** Writes `data` at once and collects what comes back until `count` status lines arrived or the server closed. */
function pipeline(port: number, data: string, count: number, waitMs = 20_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    // Status lines are collected as they come; a line split across reads is joined via `tail`.
    const found: string[] = [];
    let tail = "";
    const statuses = (): string[] => found;
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`only ${statuses().length} of ${count} answers after ${waitMs} ms`));
    }, waitMs);
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      const text = tail + d;
      const lines = text.split("\n");
      tail = lines.pop() ?? "";
      for (const l of lines) if (/^HTTP\/1\.1 \d{3} /.test(l)) found.push(l.slice(0, 12));
      if (statuses().length >= count) {
        clearTimeout(t);
        s.destroy();
        resolve(statuses());
      }
    });
    s.on("error", reject);
    s.on("close", () => {
      clearTimeout(t);
      resolve(statuses());
    });
    s.write(data);
  });
}

describe("security: pipelined request floods", () => {
  afterEach(closeAll);

  it("20000 pipelined refused requests in one write: all answered 400 in order, no crash (answers are not built by recursion)", async function () {
    this.timeout(60_000);
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const n = 20_000;
    const got = await pipeline(app.port, "GET http://elsewhere.example/ HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n), n, 50_000);
    assert.equal(got.length, n);
    assert.ok(got.every((s) => s === "HTTP/1.1 400"));
    assert.equal(lb1.seen.length, 0);
    // Still serving.
    assert.equal((await request(app.port, { path: "/" })).body, "lb1");
  });

  it("500 pipelined GETs in one write reach the member in order and get 500 answers", async function () {
    this.timeout(30_000);
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    let data = "";
    for (let i = 0; i < 500; i++) data += `GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const got = await pipeline(app.port, data, 500);
    assert.equal(got.length, 500);
    assert.ok(got.every((s) => s === "HTTP/1.1 200"));
    assert.deepEqual(
      lb1.seen.map((r) => r.url),
      Array.from({ length: 500 }, (_, i) => `/r${i}`),
    );
  });
});
