import { strict as assert } from "node:assert";
import { parseCidr, ipAllowed } from "../../src/cidr";
import { isHopByHop, connectionTokens } from "../../src/proxy/hop";

describe("unit: CIDR allowlist", () => {
  const allow = ["127.0.0.0/8", "172.16.0.0/12", "::1/128"].map((c) => parseCidr(c)!);
  it("matches IPv4, IPv4-mapped IPv6 and IPv6", () => {
    assert.ok(ipAllowed("127.0.0.1", allow));
    assert.ok(ipAllowed("::ffff:172.31.255.1", allow));
    assert.ok(ipAllowed("::1", allow));
  });
  it("refuses addresses outside", () => {
    assert.ok(!ipAllowed("172.32.0.1", allow));
    assert.ok(!ipAllowed("10.0.0.1", allow));
    assert.ok(!ipAllowed("::2", allow));
    assert.ok(!ipAllowed(undefined, allow));
    assert.ok(!ipAllowed("garbage", allow));
  });
  it("rejects malformed ranges", () => {
    for (const c of ["1.2.3.4/33", "1.2.3/8", "x/8", "1.2.3.4/8/1", "::1/129"]) assert.equal(parseCidr(c), null, c);
  });
});

describe("unit: hop-by-hop headers", () => {
  it("fixed list, Proxy-* and Connection-named headers", () => {
    const t = connectionTokens(["Connection", "close, X-Foo"]);
    for (const h of ["Connection", "keep-alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization", "proxy-connection", "X-Foo"])
      assert.ok(isHopByHop(h, t), h);
    for (const h of ["Cookie", "Content-Length", "Trailers-Ok", "X-Bar", "Host"]) assert.ok(!isHopByHop(h, t), h);
  });
});
