// Issue 14, item 6: a client cannot choose the host, scheme or address that
// Drupal (Symfony behind a trusted proxy takes the first value) builds links
// and access decisions from. Only peers in trustForwardedFrom may pass theirs.
import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, request, closeAll } from "../helpers";

const HOSTILE = {
  Host: "www.example.org",
  "X-Forwarded-Host": "evil.example",
  "X-Forwarded-For": "6.6.6.6",
  "X-Forwarded-Proto": "https",
  Forwarded: "for=6.6.6.6;proto=https;host=evil.example",
};

describe("security: client-sent forwarding headers", () => {
  afterEach(closeAll);

  it("a client's X-Forwarded-Host, -For, -Proto and Forwarded do not reach the member", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    await request(app.port, { path: "/", headers: HOSTILE });
    const h = lb1.seen[0].headers;
    assert.equal(h["x-forwarded-host"], "www.example.org");
    assert.equal(h["x-forwarded-for"], "127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.equal(h.forwarded, undefined);
    assert.ok(!JSON.stringify(lb1.seen[0].rawHeaders).includes("evil.example"));
  });

  it("a peer outside trustForwardedFrom is treated as a client", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { trustForwardedFrom: ["10.0.0.0/8"] }));
    await request(app.port, { path: "/", headers: HOSTILE });
    assert.ok(!JSON.stringify(lb1.seen[0].rawHeaders).includes("evil.example"));
    assert.equal(lb1.seen[0].headers["x-forwarded-for"], "127.0.0.1");
  });

  it("a trusted peer (a TLS terminator in front) keeps its forwarding headers", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { trustForwardedFrom: ["127.0.0.0/8"] }));
    await request(app.port, { path: "/", headers: HOSTILE });
    const h = lb1.seen[0].headers;
    assert.equal(h["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "https");
    assert.equal(h.forwarded, HOSTILE.Forwarded);
  });
});
