/**
 * The balancer pair (issue 12) as rendered: both balancers from one model,
 * keepalived's file on each, and the settings' errors.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { validateConfig } from "../../infra/config/validate";
import { buildPayloads } from "../../infra/payload/index";
import { ENGINE_CHECK, KEEPALIVED_CONFIG, vrrpPassword } from "../../infra/payload/keepalived";
import { CRON_SCRIPT } from "../../infra/payload/cron";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, dockerValues, exampleHostKey, model, PROJECT, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { BALANCER_VHOST, fileOf, host, PROXY_NODE_CONFIG, WEB_VHOST } from "../support/payloads";

const PEER = {
  name: "balancer2",
  address: "10.0.0.6",
  ssh: { host: "203.0.113.6", user: "root", hostKey: exampleHostKey(6) },
  managerUrl: "http://cluster.example.org:8083",
};

function pairValues(engine: "apache" | "proxy-node", extra: Record<string, unknown> = {}): Values {
  const v = sshValues({ engine });
  (v.balancer as Record<string, unknown>).redundancy = { virtualAddress: "10.0.0.4", routerId: 42, peer: PEER, ...extra };
  return v;
}

/** keepalived.conf's directives, one line each, without comments. */
function keepalivedLines(p: HostPayload): string[] {
  return fileOf(p, KEEPALIVED_CONFIG)
    .content.split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

function configError(values: Values, key: string, mention: RegExp): void {
  assert.throws(
    () => validateConfig({ project: PROJECT, stack: "test" }, values),
    (e: unknown) => e instanceof ConfigError && e.key === key && mention.test(e.message),
  );
}

describe("a balancer pair (balancer.redundancy)", () => {
  for (const engine of ["apache", "proxy-node"] as const) {
    describe(`engine ${engine}`, () => {
      const m = model(pairValues(engine));
      const payloads = buildPayloads(m, SECRETS, ARTIFACTS);
      const first = host(payloads, "balancer");
      const second = host(payloads, "balancer2");

      it("renders two balancers, after the web servers", () => {
        assert.deepEqual(
          payloads.map((p) => p.host.name),
          ["data", "lb1", "lb2", "balancer", "balancer2"],
        );
      });

      it("gives both balancers the same members, routes and cookie: a client is routed alike by either", () => {
        if (engine === "apache") {
          const strip = (s: string): string => s.replace(/^#.*$/gm, "").replace(/Require ip .*$/m, "");
          assert.equal(strip(fileOf(first, BALANCER_VHOST).content), strip(fileOf(second, BALANCER_VHOST).content));
        }
        const balancerBlock = (p: HostPayload): unknown => (JSON.parse(fileOf(p, PROXY_NODE_CONFIG).content) as { balancer: unknown }).balancer;
        assert.deepEqual(balancerBlock(first), balancerBlock(second));
      });

      it("tells each proxy-node its name, the virtual address and the other balancer's manager, to carry manager changes to", () => {
        const red = (p: HostPayload): unknown => (JSON.parse(fileOf(p, PROXY_NODE_CONFIG).content) as { redundancy: unknown }).redundancy;
        assert.deepEqual(red(first), { self: "balancer", virtualAddress: "10.0.0.4", peers: [{ name: "balancer2", managerUrl: "http://10.0.0.6:8081" }] });
        assert.deepEqual(red(second), { self: "balancer2", virtualAddress: "10.0.0.4", peers: [{ name: "balancer", managerUrl: "http://10.0.0.5:8081" }] });
      });

      it("keepalived: one VRRP instance, both BACKUP with nopreempt, unicast to the other, the engine tracked, the first preferred", () => {
        const a = keepalivedLines(first);
        const b = keepalivedLines(second);
        for (const lines of [a, b]) {
          for (const l of [
            "state BACKUP",
            "nopreempt",
            "virtual_router_id 42",
            "advert_int 1",
            "interface eth0",
            "auth_type PASS",
            "10.0.0.4/32 dev eth0",
            "drupal_cluster_engine",
          ]) {
            assert.ok(lines.includes(l), `keepalived.conf lacks "${l}":\n${lines.join("\n")}`);
          }
          assert.ok(lines.includes(`script "${ENGINE_CHECK}"`));
        }
        assert.ok(a.includes("priority 150") && b.includes("priority 100"));
        assert.ok(a.includes("unicast_src_ip 10.0.0.5") && a.includes("10.0.0.6"));
        assert.ok(b.includes("unicast_src_ip 10.0.0.6") && b.includes("10.0.0.5"));
        // One password on both, from what both always share: a rotated secret cannot split the pair.
        assert.ok(a.includes(`auth_pass ${vrrpPassword(m)}`) && b.includes(`auth_pass ${vrrpPassword(m)}`));
        const rotated = host(buildPayloads(m, { ...SECRETS, managerToken: "another-token-123" }, ARTIFACTS), "balancer");
        assert.equal(fileOf(rotated, KEEPALIVED_CONFIG).content, fileOf(first, KEEPALIVED_CONFIG).content, "a new manager token changed keepalived's file");
        assert.ok(!fileOf(first, KEEPALIVED_CONFIG).content.includes(SECRETS.managerToken));
        assert.equal(fileOf(first, KEEPALIVED_CONFIG).mode, "0600");
      });

      it("starts keepalived after the engine it tracks, and checks the interface holds the balancer's address", () => {
        const order = first.services.map((s) => s.name);
        const engineAt = order.indexOf(engine === "apache" ? "apache2" : "proxy-node");
        assert.ok(engineAt >= 0 && order.indexOf("keepalived") > engineAt, `services start in the order ${order.join(", ")}`);
        assert.ok(first.packages.includes("keepalived"));
        const step = first.configure.find((s) => s.name === "check-vrrp-interface");
        assert.ok(step, "no interface check");
        assert.match(step.run, /ip -o -4 addr show dev eth0 .*grep -qF ' 10\.0\.0\.5\/'/);
        assert.match(step.run, /drupal-cluster:balancer\.redundancy\.interface/);
      });

      it("lets each balancer's managers be used by the other (the peer carries manager changes across)", () => {
        const cfg = JSON.parse(fileOf(second, PROXY_NODE_CONFIG).content) as { manager: { allow: string[] } };
        assert.ok(cfg.manager.allow.includes("10.0.0.5"), `balancer2's manager does not allow balancer: ${cfg.manager.allow.join(" ")}`);
        if (engine === "apache") assert.match(fileOf(second, BALANCER_VHOST).content, /Require ip 127\.0\.0\.1 ::1 .* 10\.0\.0\.5\n/);
      });

      it("runs cron only on the balancer that holds the address", () => {
        for (const p of [first, second]) assert.match(fileOf(p, CRON_SCRIPT).content, /^VIRTUAL_ADDRESS=10\.0\.0\.4$/m);
      });

      it("trusts X-Forwarded-* from both balancers on the web servers", () => {
        const values = pairValues(engine);
        values.app = "drupal";
        values.drupal = { source: "tarball", url: "https://ftp.drupal.org/files/projects/drupal-10.3.6.tar.gz" };
        const lb1 = host(buildPayloads(model(values), SECRETS, ARTIFACTS), "lb1");
        const settings = lb1.files.find((f) => f.path.endsWith("settings.php"))!.content;
        assert.match(settings, /'10\.0\.0\.5'/);
        assert.match(settings, /'10\.0\.0\.6'/);
        assert.ok(fileOf(lb1, WEB_VHOST));
      });
    });
  }

  it("preempt: true drops nopreempt; advertInterval and interface are rendered as set", () => {
    const m = model(pairValues("apache", { preempt: true, advertInterval: 2, interface: "ens18" }));
    const lines = keepalivedLines(host(buildPayloads(m, SECRETS, ARTIFACTS), "balancer"));
    assert.ok(!lines.includes("nopreempt"));
    assert.ok(lines.includes("advert_int 2") && lines.includes("interface ens18") && lines.includes("10.0.0.4/32 dev ens18"));
  });

  it("without redundancy there is one balancer and no keepalived", () => {
    const payloads = buildPayloads(model(sshValues()), SECRETS, ARTIFACTS);
    assert.equal(payloads.filter((p) => p.host.role === "balancer").length, 1);
    assert.ok(!payloads.some((p) => p.files.some((f) => f.path === KEEPALIVED_CONFIG)));
    assert.match(fileOf(host(payloads, "balancer"), CRON_SCRIPT).content, /^VIRTUAL_ADDRESS=''$/m);
  });

  it("the docker target renders the same pair: balancer2 at .6, the address at .4", () => {
    const v = dockerValues();
    (v.balancer as Record<string, unknown>).redundancy = {};
    const m = model(v);
    assert.equal(m.balancer.redundancy?.peer.clusterAddress, "172.30.99.6");
    assert.equal(m.balancer.redundancy?.virtualAddress, "172.30.99.4");
    assert.equal(m.balancer.publicUrl, "http://127.0.0.1:8080");
    assert.ok(keepalivedLines(host(buildPayloads(m, SECRETS, ARTIFACTS), "balancer2")).includes("172.30.99.4/32 dev eth0"));
  });

  describe("bad settings name their key", () => {
    const key = (k: string): string => `${PROJECT}:balancer.redundancy${k}`;
    it("no peer on target ssh", () => {
      const v = pairValues("apache");
      delete ((v.balancer as Record<string, unknown>).redundancy as Record<string, unknown>).peer;
      configError(v, key(".peer"), /is required: the second balancer/);
    });
    it("a virtual address that is not IPv4", () =>
      configError(pairValues("apache", { virtualAddress: "10.0.0.4/24" }), key(".virtualAddress"), /not accepted; use a free IPv4 address/));
    it("a virtual address a host already has", () =>
      configError(pairValues("apache", { virtualAddress: "10.0.0.11" }), key(".virtualAddress"), /lb1's own address/));
    it("a router id out of VRRP's range", () => configError(pairValues("apache", { routerId: 256 }), key(".routerId"), /1.*255/));
    it("an interface name with a space", () => configError(pairValues("apache", { interface: "eth0 dev x" }), key(".interface"), /network interface name/));
    it("a typo inside redundancy", () => configError(pairValues("apache", { prempt: true }), `${PROJECT}:balancer.redundancy.prempt`, /prempt/));
    it("a peer named like another host", () => configError(pairValues("apache", { peer: { ...PEER, name: "lb1" } }), key(".peer.name"), /"lb1" is used twice/));
    it("a peer named front (the forwarder's name)", () =>
      configError(pairValues("apache", { peer: { ...PEER, name: "front" } }), key(".peer.name"), /other than balancer, data and front/));
    it("a virtual address outside the local hosts' network, or on its gateway or front", () => {
      const local = (vip: string): Values => {
        const v = pairValues("apache", { virtualAddress: vip });
        v.localHosts = { subnet: "10.0.0.0/24" };
        return v;
      };
      configError(local("10.0.1.4"), key(".virtualAddress"), /not a host address in the cluster network 10\.0\.0\.0\/24; use one such as 10\.0\.0\.4/);
      configError(local("10.0.0.1"), key(".virtualAddress"), /gateway/);
      configError(local("10.0.0.3"), key(".virtualAddress"), /front/);
      const d = dockerValues();
      (d.balancer as Record<string, unknown>).redundancy = { virtualAddress: "172.30.99.3" };
      configError(d, key(".virtualAddress"), /front/);
    });
    it("a peer with url (the pair's URL is balancer.url)", () =>
      configError(pairValues("apache", { peer: { ...PEER, url: "http://x.example.org" } }), key(".peer.url"), /directUrl/));
    it("directUrl without a pair", () => {
      const v = sshValues();
      (v.balancer as Record<string, unknown>).directUrl = "http://10.0.0.5";
      configError(v, `${PROJECT}:balancer.directUrl`, /only used with balancer.redundancy/);
    });
  });
});
