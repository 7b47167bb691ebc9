import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { checkTlsPrivateKey, INTERMEDIATE_CIPHERS } from "../../infra/config/tls";
import { validateConfig } from "../../infra/config/validate";
import { TLS_CERT, TLS_KEY } from "../../infra/payload/tls";
import { ARTIFACTS, dockerValues, model, PROJECT, sshValues, Values } from "../support/cluster-configs";
import { isWireSecret, MockRun, plainStrings, Registration, runWithMocks, TEST_STACK_SECRETS } from "../support/pulumi-mocks";
import { TestCa, TestLeaf } from "../support/tls-certs";

type Program = typeof import("../../infra/program");

/** sshValues with HTTPS on, the certificate given; other tls settings on top. */
function withTls(leaf: TestLeaf, tls: Values = {}, base: Values = sshValues()): Values {
  const v = structuredClone(base) as { balancer: Values };
  v.balancer.tls = { certificate: leaf.chain, ...tls };
  return v as Values;
}

function configError(values: Values, key: string, ...mentions: RegExp[]): ConfigError {
  let caught: unknown;
  try {
    validateConfig({ project: PROJECT, stack: "test" }, values);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${key}, got ${String(caught)}`);
  assert.equal(caught.key, key, caught.message);
  for (const m of mentions) assert.match(caught.message, m);
  return caught;
}

describe("balancer.tls: certificates checked before anything is created", function () {
  this.timeout(60_000);
  let ca: TestCa;
  let good: TestLeaf;
  const DAY = 86_400_000;
  before(() => {
    ca = new TestCa();
    good = ca.leaf(["cluster.example.org"]);
  });
  after(() => ca.remove());

  it("defaults: port 443, redirect on, no HSTS, TLS 1.2 floor, Mozilla's intermediate suites, the https origin of balancer.url's host", () => {
    const t = model(withTls(good)).balancer.tls!;
    assert.equal(t.httpsPort, 443);
    assert.equal(t.redirect, true);
    assert.equal(t.hstsMaxAge, 0);
    assert.equal(t.minVersion, "TLSv1.2");
    assert.equal(t.ciphers, INTERMEDIATE_CIPHERS.join(":"));
    assert.equal(t.url, "https://cluster.example.org");
    const other = model(withTls(good, { httpsPort: 8443, redirect: false, hstsMaxAge: 31536000, minVersion: "TLSv1.3" })).balancer.tls!;
    assert.deepEqual([other.url, other.redirect, other.hstsMaxAge, other.minVersion], ["https://cluster.example.org:8443", false, 31536000, "TLSv1.3"]);
  });

  it("an IPv4 serverName is checked against the certificate's IP addresses", () => {
    const v = withTls(ca.leaf(["127.0.0.1"]));
    v.serverName = "127.0.0.1";
    assert.equal(model(v).balancer.tls!.url, "https://cluster.example.org");
    v.serverName = "127.0.0.2";
    configError(v, "drupal-cluster:balancer.tls.certificate", /not valid for serverName "127\.0\.0\.2"/, /127\.0\.0\.1/);
  });

  it("an expired certificate: ConfigError naming balancer.tls.certificate and when it expired", () => {
    const old = ca.leaf(["cluster.example.org"], { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) });
    configError(withTls(old), "drupal-cluster:balancer.tls.certificate", /expired on/);
  });

  it("a certificate not valid yet: ConfigError naming balancer.tls.certificate", () => {
    const early = ca.leaf(["cluster.example.org"], { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 30 * DAY) });
    configError(withTls(early), "drupal-cluster:balancer.tls.certificate", /not valid yet/);
  });

  it("a certificate for another name: ConfigError naming balancer.tls.certificate, serverName and the names it holds", () => {
    const other = ca.leaf(["www.example.net", "example.net"]);
    configError(withTls(other), "drupal-cluster:balancer.tls.certificate", /not valid for serverName "cluster\.example\.org"/, /www\.example\.net/);
  });

  it("not PEM, or a chain out of order: ConfigError naming balancer.tls.certificate", () => {
    configError(withTls({ ...good, chain: "hello" }), "drupal-cluster:balancer.tls.certificate", /not a PEM certificate chain/);
    configError(withTls({ ...good, chain: `${ca.cert}${good.cert}` }), "drupal-cluster:balancer.tls.certificate", /not valid for serverName|did not issue/);
    const broken = good.cert.replace(/[A-Za-z]{20}\n/, "AAAAAAAAAAAAAAAAAAAA\n");
    configError(withTls({ ...good, chain: broken }), "drupal-cluster:balancer.tls.certificate");
  });

  it("a key that does not match: ConfigError naming tlsPrivateKey, without the key in the message", () => {
    const t = model(withTls(good)).balancer.tls!;
    const otherKey = ca.leaf(["cluster.example.org"]).key;
    assert.doesNotThrow(() => checkTlsPrivateKey(PROJECT, t, good.key));
    for (const bad of [otherKey, "not a key"]) {
      let caught: unknown;
      try {
        checkTlsPrivateKey(PROJECT, t, bad);
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof ConfigError);
      assert.equal(caught.key, "drupal-cluster:tlsPrivateKey");
      if (bad.length > 80) assert.ok(!caught.message.includes(bad.slice(40, 80)), "the message shows the key");
    }
  });

  it("other settings: each bad one names its key", () => {
    configError(withTls(good, { httpsPort: 80 }), "drupal-cluster:balancer.tls.httpsPort", /port 80, which Apache/);
    configError(withTls(good, { httpsPort: 8081 }), "drupal-cluster:balancer.tls.httpsPort", /proxy-node's manager/);
    configError(withTls(good, { minVersion: "TLSv1.1" }), "drupal-cluster:balancer.tls.minVersion");
    configError(withTls(good, { ciphers: "AES128-SHA" }), "drupal-cluster:balancer.tls.ciphers", /"AES128-SHA" is not accepted/);
    configError(withTls(good, { ciphers: "ECDHE-RSA-AES128-GCM-SHA256:HIGH" }), "drupal-cluster:balancer.tls.ciphers");
    configError(withTls(good, { url: "http://cluster.example.org" }), "drupal-cluster:balancer.tls.url");
    configError(withTls(good, { hstsMaxAge: -1 }), "drupal-cluster:balancer.tls.hstsMaxAge");
    configError(withTls(good, { hsts: true }), "drupal-cluster:balancer.tls.hsts", /unknown setting/);
    configError(withTls(good, {}, dockerValues()), "drupal-cluster:balancer.tls", /target ssh only/);
  });

  describe("the program with HTTPS (Pulumi mocks)", () => {
    let program: Program;
    before(async () => {
      await runWithMocks("import", {}, {}, () => undefined);
      program = await import("../../infra/program");
    });
    const run = (values: Values, key: string | undefined, stack = "unit-tls"): Promise<MockRun<unknown>> =>
      runWithMocks(stack, values, { ...TEST_STACK_SECRETS, ...(key === undefined ? {} : { tlsPrivateKey: key }) }, () => program.clusterProgram(ARTIFACTS));
    const file = (r: MockRun<unknown>, path: string): Registration => {
      const f = r.registrations.find((x) => x.name === `balancer:${path}`);
      assert.ok(f, `no resource for ${path}`);
      return f;
    };

    it("the key reaches the balancer as a Pulumi secret only; the chain as plain config", async () => {
      const r = await run(withTls(good), good.key);
      assert.equal(r.error, undefined, String(r.error));
      assert.ok(isWireSecret(file(r, TLS_KEY).wire.content), "the key file's content is not a secret");
      assert.equal(file(r, TLS_KEY).inputs.mode, "0600");
      assert.equal(file(r, TLS_CERT).inputs.content, good.chain);
      const keyBody = good.key.split("\n")[1];
      const leaks = r.registrations.flatMap((x) =>
        plainStrings(x.wire)
          .filter(([, s]) => s.includes(keyBody))
          .map(([at]) => `${x.name}.${at}`),
      );
      assert.deepEqual(leaks, []);
    });

    it("a mismatched or missing key stops the program before any resource, naming tlsPrivateKey", async () => {
      const mismatched = await run(withTls(good), ca.leaf(["cluster.example.org"]).key);
      assert.ok(mismatched.error instanceof ConfigError, String(mismatched.error));
      assert.match(mismatched.error.message, /drupal-cluster:tlsPrivateKey: the secret does not match balancer\.tls\.certificate/);
      assert.equal(mismatched.registrations.length, 0);
      const missing = await run(withTls(good), undefined);
      assert.ok(missing.error instanceof ConfigError, String(missing.error));
      assert.match(missing.error.message, /drupal-cluster:tlsPrivateKey.*config set --stack unit-tls --secret tlsPrivateKey < balancer\.key/);
      assert.equal(missing.registrations.length, 0);
    });

    for (const engine of ["apache", "proxy-node"] as const) {
      it(`engine ${engine}: a new certificate rewrites the two files and reloads without restarting proxy-node`, async () => {
        const next = ca.leaf(["cluster.example.org"]);
        const a = await run(withTls(good, {}, sshValues({ engine })), good.key, "unit-tls-diff");
        const b = await run(withTls(next, {}, sshValues({ engine })), next.key, "unit-tls-diff");
        assert.equal(a.error ?? b.error, undefined);
        const wire = (r: Registration): string => JSON.stringify({ ...r.wire, __provider: undefined });
        const before = new Map(a.registrations.map((r) => [r.name, wire(r)]));
        const changed = b.registrations
          .filter((r) => before.get(r.name) !== wire(r))
          .map((r) => r.name)
          .sort();
        const reloads = engine === "apache" ? ["balancer-service-apache2", "balancer-service-proxy-node"] : ["balancer-service-proxy-node"];
        assert.deepEqual(changed, [...reloads, `balancer:${TLS_CERT}`, `balancer:${TLS_KEY}`].sort());
        // proxy-node's control script (its code key) is unchanged: `apply` sends SIGHUP, it does not restart.
        const reload = b.registrations.find((r) => r.name === "balancer-service-proxy-node")!;
        assert.equal(reload.inputs.update, "proxy-node-service apply");
      });
    }
  });
});
