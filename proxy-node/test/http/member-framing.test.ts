import { strict as assert } from "node:assert";
import { startProxy, baseConfig, request, closeAll } from "../helpers";
import { type RawMember, rawMember, closeRawMembers } from "../raw-http";

/** A member that writes raw bytes, to check how the proxy reads unusual but valid (or invalid) answers. */
function answeringMember(answer: string, closeAfter: boolean): Promise<RawMember> {
  return rawMember((c) => c.once("data", () => (closeAfter ? c.end(answer) : c.write(answer))));
}

describe("http: unusual member answers", () => {
  afterEach(async () => {
    await closeAll();
    await closeRawMembers();
  });

  it("a body delimited by connection close reaches the client whole", async () => {
    const m = await answeringMember("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold-style body", true);
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.status, 200);
    assert.equal(r.body, "old-style body");
  });

  it("a chunked answer with trailers reaches the client de-chunked and whole", async () => {
    const m = await answeringMember("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nDrup\r\n3\r\nal!\r\n0\r\nX-T: 1\r\n\r\n", false);
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.body, "Drupal!");
  });

  it("a member answering garbage gives the client a 502", async () => {
    const m = await answeringMember("SMTP ready\r\n\r\n", false);
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.status, 502);
  });

  it("a member answering with conflicting Content-Length gives 502, not a split response", async () => {
    const m = await answeringMember("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc", false);
    const app = await startProxy(baseConfig([{ url: m.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.status, 502);
  });
});
