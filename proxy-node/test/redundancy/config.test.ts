import { strict as assert } from "node:assert";
import { validateConfig } from "../../src/config";
import { holdsAddress } from "../../src/address";

const manager = { port: 8081, allow: ["127.0.0.0/8"], token: "a-long-random-secret" };
const base = { manager, balancer: { members: [{ url: "http://lb1:80", route: "lb1" }] } };
const redundancy = { self: "balancer", virtualAddress: "172.30.74.4", peers: [{ name: "balancer2", managerUrl: "http://172.30.74.6:8081" }] };

function error(raw: unknown): string {
  try {
    validateConfig(raw);
  } catch (e) {
    return (e as Error).message;
  }
  return "no error";
}

describe("redundancy: config block and address check", () => {
  it("the block as the cluster program renders it is taken as is; without it, null", () => {
    assert.deepEqual(validateConfig({ ...base, redundancy }).redundancy, redundancy);
    assert.equal(validateConfig(base).redundancy, null);
    assert.equal(validateConfig({ ...base, redundancy: null }).redundancy, null);
    // A trailing slash is dropped, so paths can be appended.
    const slash = { ...redundancy, peers: [{ name: "balancer2", managerUrl: "http://172.30.74.6:8081/" }] };
    assert.equal(validateConfig({ ...base, redundancy: slash }).redundancy?.peers[0].managerUrl, "http://172.30.74.6:8081");
  });

  it("one error naming the key", () => {
    const r = (patch: Record<string, unknown>) => error({ ...base, redundancy: { ...redundancy, ...patch } });
    assert.match(r({ virtualAddress: "172.30.74" }), /^config: redundancy\.virtualAddress: expected an IPv4 address/);
    assert.match(r({ virtualAddress: "172.30.74.256" }), /^config: redundancy\.virtualAddress: /);
    assert.match(r({ self: "" }), /^config: redundancy\.self: expected a host name/);
    assert.match(r({ peers: [] }), /^config: redundancy\.peers: expected a non-empty list/);
    assert.match(
      r({ peers: [{ name: "balancer2", managerUrl: "172.30.74.6:8081" }] }),
      /^config: redundancy\.peers\[0\]\.managerUrl: expected http:\/\/host:port/,
    );
    assert.match(r({ peers: [{ name: "balancer", managerUrl: "http://x:1" }] }), /^config: redundancy\.peers\[0\]\.name: "balancer" is already self/);
    assert.match(r({ peers: [{ name: "balancer2", managerUrl: "http://x:1", token: "x" }] }), /^config: redundancy\.peers\[0\]\.token: unknown key/);
    assert.match(r({ routerId: 51 }), /^config: redundancy\.routerId: unknown key/);
    assert.match(error({ balancer: base.balancer, redundancy }), /^config: redundancy: needs manager/);
  });

  it("holdsAddress: an IPv4 address on any interface", () => {
    const ifaces = {
      lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4" as const, mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" }],
      eth0: [
        { address: "172.30.74.5", netmask: "255.255.255.0", family: "IPv4" as const, mac: "02:42:ac:1e:4a:05", internal: false, cidr: "172.30.74.5/24" },
        { address: "172.30.74.4", netmask: "255.255.255.255", family: "IPv4" as const, mac: "02:42:ac:1e:4a:05", internal: false, cidr: "172.30.74.4/32" },
      ],
    };
    assert.equal(holdsAddress("172.30.74.4", ifaces), true);
    assert.equal(holdsAddress("172.30.74.6", ifaces), false);
    assert.equal(holdsAddress("127.0.0.1"), true, "this host's own loopback");
  });
});
