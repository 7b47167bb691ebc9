import assert from "node:assert/strict";
import { validateConfig as validateProxyNodeConfig } from "../../proxy-node/src/config";
import { apacheBalancerModules, PROXY_NODE_CODE_KEY } from "../../infra/payload/balancer";
import { buildPayloads } from "../../infra/payload/index";
import { TLS_CERT, TLS_KEY } from "../../infra/payload/tls";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, model, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { TestCa, TestLeaf } from "../support/tls-certs";

/** Issue 10: the rendered HTTPS configuration of both engines, and of the web servers behind them. */
describe("templates: HTTPS at the balancer", function () {
  this.timeout(60_000);
  let ca: TestCa;
  let leaf: TestLeaf;
  before(() => {
    ca = new TestCa();
    leaf = ca.leaf(["cluster.example.org"]);
  });
  after(() => ca.remove());

  function payloads(engine: "apache" | "proxy-node", tls: Values | null): HostPayload[] {
    const v = structuredClone(sshValues({ engine })) as { balancer: Values };
    if (tls) v.balancer.tls = { certificate: leaf.chain, ...tls };
    return buildPayloads(model(v as Values), { ...SECRETS, tlsPrivateKey: leaf.key }, ARTIFACTS);
  }
  const balancer = (ps: HostPayload[]): HostPayload => ps.find((p) => p.host.role === "balancer")!;
  const content = (p: HostPayload, path: string): string => {
    const f = p.files.find((x) => x.path === path);
    assert.ok(f, `${p.host.name} has no ${path}`);
    return f.content;
  };
  /** The vhosts of Apache's balancer site, by port. */
  const vhosts = (p: HostPayload): Map<number, string> =>
    new Map(
      [...content(p, "/etc/apache2/sites-available/drupal-cluster-balancer.conf").matchAll(/<VirtualHost \*:(\d+)>([\s\S]*?)<\/VirtualHost>/g)].map((m) => [
        Number(m[1]),
        m[2],
      ]),
    );

  describe("engine apache", () => {
    it("a mod_ssl vhost on the HTTPS port: the certificate files, TLS 1.2 floor, Mozilla's intermediate suites, X-Forwarded-Proto https", () => {
      const b = balancer(payloads("apache", {}));
      const v = vhosts(b);
      assert.deepEqual([...v.keys()], [80, 443]);
      const tls = v.get(443)!;
      assert.match(tls, /^\s*SSLEngine on$/m);
      assert.match(tls, new RegExp(`^\\s*SSLCertificateFile ${TLS_CERT}$`, "m"));
      assert.match(tls, new RegExp(`^\\s*SSLCertificateKeyFile ${TLS_KEY}$`, "m"));
      assert.match(tls, /^\s*SSLProtocol -all \+TLSv1\.2 \+TLSv1\.3$/m);
      assert.match(tls, /^\s*SSLCipherSuite ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:[A-Z0-9:-]+CHACHA20-POLY1305$/m);
      assert.match(tls, /^\s*SSLSessionTickets off$/m);
      assert.match(tls, /^\s*RequestHeader set X-Forwarded-Proto https$/m);
      assert.doesNotMatch(tls, /Strict-Transport-Security/);
      assert.doesNotMatch(tls, /R=301/);
      assert.match(content(b, "/etc/apache2/ports.conf"), /^Listen 80\nListen 443 https$/m);
      assert.ok(
        apacheBalancerModules(model({ ...sshValues(), balancer: { ...(sshValues().balancer as Values), tls: { certificate: leaf.chain } } })).includes("ssl"),
      );
    });

    it("both vhosts proxy the same members with the same routes, cookie, refusals and manager allowlist", () => {
      const v = vhosts(balancer(payloads("apache", {})));
      const shared = (s: string): string[] => s.split("\n").filter((l) => /BalancerMember|ProxyPass|Require ip|RewriteRule \^ - \[F\]|unset/.test(l));
      assert.ok(shared(v.get(80)!).length >= 10);
      assert.deepEqual(shared(v.get(443)!), shared(v.get(80)!));
    });

    it("plain HTTP redirects (301) to the HTTPS origin, except the balancer's own loopback requests; not when redirect is off", () => {
      const plain = vhosts(balancer(payloads("apache", { httpsPort: 8443 }))).get(80)!;
      assert.match(
        plain,
        /RewriteCond %\{REMOTE_ADDR\} "!\^\(127\\\.0\\\.0\\\.1\|::1\)\$"\n\s*RewriteRule \^ "https:\/\/cluster\.example\.org:8443%\{REQUEST_URI\}" \[R=301,L\]/,
      );
      // The refusal of absolute-form targets comes first: it is never turned into a redirect.
      assert.ok(plain.indexOf("[F]") < plain.indexOf("R=301"));
      assert.match(plain, /RequestHeader set X-Forwarded-Proto http$/m);
      const off = vhosts(balancer(payloads("apache", { redirect: false }))).get(80)!;
      assert.doesNotMatch(off, /R=301/);
    });

    it("HSTS only when hstsMaxAge is set, on the HTTPS vhost only", () => {
      const v = vhosts(balancer(payloads("apache", { hstsMaxAge: 31536000 })));
      assert.match(v.get(443)!, /Header always set Strict-Transport-Security "max-age=31536000"/);
      assert.doesNotMatch(v.get(80)!, /Strict-Transport-Security/);
    });

    it("minVersion TLSv1.3 leaves TLS 1.2 out", () => {
      assert.match(vhosts(balancer(payloads("apache", { minVersion: "TLSv1.3" }))).get(443)!, /^\s*SSLProtocol -all \+TLSv1\.3$/m);
    });

    it("without balancer.tls nothing of TLS is rendered", () => {
      const b = balancer(payloads("apache", null));
      assert.deepEqual([...vhosts(b).keys()], [80]);
      const all = b.files.map((f) => f.content).join("\n");
      assert.doesNotMatch(all, /SSL|X-Forwarded-Proto (http|https)$|"tls"|443/m);
      assert.ok(!apacheBalancerModules(model(sshValues())).includes("ssl"));
    });
  });

  for (const engine of ["apache", "proxy-node"] as const) {
    describe(`engine ${engine}`, () => {
      it("the chain (0644) and the key (0600, a secret file) land on the balancer", () => {
        const b = balancer(payloads(engine, {}));
        const cert = b.files.find((f) => f.path === TLS_CERT)!;
        const key = b.files.find((f) => f.path === TLS_KEY)!;
        assert.deepEqual([cert.mode, cert.secret, cert.content], ["0644", false, leaf.chain]);
        assert.deepEqual([key.mode, key.owner, key.secret, key.content], ["0600", "root:root", true, leaf.key]);
      });

      it("a new certificate reloads (SIGHUP, graceful) and never restarts proxy-node: its code key stays", () => {
        const b = balancer(payloads(engine, {}));
        const proxyNode = b.services.find((s) => s.name === "proxy-node")!;
        assert.ok(proxyNode.watch.includes(TLS_CERT) && proxyNode.watch.includes(TLS_KEY));
        assert.equal(proxyNode.reload, "proxy-node-service apply");
        const other = ca.leaf(["cluster.example.org"]);
        const v = structuredClone(sshValues({ engine })) as { balancer: Values };
        v.balancer.tls = { certificate: other.chain };
        const next = balancer(buildPayloads(model(v as Values), { ...SECRETS, tlsPrivateKey: other.key }, ARTIFACTS));
        const control = (p: HostPayload): string => content(p, PROXY_NODE_CODE_KEY);
        assert.equal(control(next), control(b), "a new certificate changed proxy-node's code key: apply would restart it");
        const moved = balancer(payloads(engine, { httpsPort: 8443 }));
        assert.notEqual(control(moved), control(b), "a new HTTPS port must restart proxy-node (a reload keeps its listeners)");
        if (engine === "apache") {
          const apache = b.services.find((s) => s.name === "apache2")!;
          assert.ok(apache.watch.includes(TLS_CERT) && apache.watch.includes(TLS_KEY));
          // A graceful reload (after the member-change checks, which change nothing here), never a restart.
          assert.match(apache.reload, /(^| && )service apache2 reload$/);
        }
      });

      it("proxy-node's tls block: the files, the settings, loopback exempt from the redirect, and proxy-node accepts it", () => {
        const b = balancer(payloads(engine, { httpsPort: 8443, hstsMaxAge: 600, url: "https://cluster.example.org:9443" }));
        const file = JSON.parse(content(b, "/etc/proxy-node/config.json"));
        assert.deepEqual(file.tls, {
          cert: TLS_CERT,
          key: TLS_KEY,
          port: 8443,
          minVersion: "TLSv1.2",
          ciphers: file.tls.ciphers,
          publicUrl: "https://cluster.example.org:9443",
          redirect: true,
          redirectExempt: ["127.0.0.0/8", "::1/128"],
          hstsMaxAge: 600,
        });
        const cfg = validateProxyNodeConfig(file);
        assert.equal(cfg.tls?.publicUrl, "https://cluster.example.org:9443");
        assert.equal(cfg.mode, engine === "apache" ? "agent" : "serve");
      });

      it("web servers: the sticky cookie is Secure, HttpOnly, SameSite=Lax when the balancer says https; the probe and Drupal trust the balancer only", () => {
        const ps = payloads(engine, {});
        const web = ps.find((p) => p.host.name === "lb1")!;
        const vhost = content(web, "/etc/apache2/sites-available/drupal-cluster-web.conf");
        assert.match(
          vhost,
          /RewriteCond %\{HTTP:X-Forwarded-Proto\} =https\n\s*RewriteRule \.\* - \[CO=BALANCEID:balancer\.lb1:cluster\.example\.org:0:\/:secure:HttpOnly:Lax\]\n\s*RewriteCond %\{HTTP:X-Forwarded-Proto\} !=https\n\s*RewriteRule \.\* - \[CO=BALANCEID:balancer\.lb1:cluster\.example\.org:0:\/\]/,
        );
        assert.match(content(web, "/var/www/probe/config.php"), /'balancer' => '10\.0\.0\.5',/);
        assert.match(content(web, "/var/www/probe/session.php"), /REMOTE_ADDR.*=== \$config\['balancer'\]/);
        assert.match(content(web, "/var/www/probe/index.php"), /'scheme' => probe_scheme\(\$config\)/);
        const plainWeb = payloads(engine, null).find((p) => p.host.name === "lb1")!;
        assert.doesNotMatch(content(plainWeb, "/etc/apache2/sites-available/drupal-cluster-web.conf"), /X-Forwarded-Proto|secure/);
      });
    });
  }

  it("Drupal: reverse_proxy from the balancer's address only, with X-Forwarded-Proto among the trusted headers", () => {
    const v = structuredClone(sshValues({ app: "drupal" })) as { balancer: Values };
    v.balancer.tls = { certificate: leaf.chain };
    const ps = buildPayloads(model(v as Values), { ...SECRETS, tlsPrivateKey: leaf.key }, ARTIFACTS);
    const settings = content(
      ps.find((p) => p.host.name === "lb1")!,
      "/var/www/drupal/web/sites/default/settings.php",
    );
    assert.match(settings, /\$settings\['reverse_proxy_addresses'\] = \['10\.0\.0\.5'\];/);
    assert.match(settings, /reverse_proxy_trusted_headers'\] = [^;]*HEADER_X_FORWARDED_PROTO;/);
    assert.doesNotMatch(settings, /HEADER_FORWARDED\b/);
  });
});
