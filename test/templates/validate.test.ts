import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { apacheBalancerModules } from "../../infra/payload/balancer";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload, PayloadFile, PayloadSecrets } from "../../infra/payload/types";
import { ClusterModel } from "../../infra/model/types";
import { ARTIFACTS, dockerValues, model, renderCases, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { TestCa } from "../support/tls-certs";
import { checkedFiles, checkScript, ensureValidatorImage, requireDocker, validateInContainer, ValidationRun } from "../support/validator";

/**
 * Every rendered file, checked on Debian bookworm by the tool that will read it
 * (the checks are scripts/validate-payload.ts's checkScript, which `up` and
 * `preview` run too): `apache2ctl -t` over the whole Apache tree with our modules,
 * sites and confs enabled; `php -l`; MariaDB's own option parsing (and the
 * bootstrap SQL run twice against a real server, since it must converge);
 * `sh -n`/`bash -n` on scripts and provisioning steps; JSON.
 */

interface Config {
  label: string;
  values: Values;
  secrets?: PayloadSecrets;
}

/** HTTPS configs need a certificate valid now: made when the suite loads, removed when it ends. */
const ca = new TestCa();
const leaf = ca.leaf(["cluster.example.org"]);
function withTls(values: Values, tls: Values): Values {
  const v = structuredClone(values) as { balancer: Values };
  v.balancer.tls = { certificate: leaf.chain, ...tls };
  return v as Values;
}

const configs: Config[] = [
  ...renderCases().map((c) => ({ label: c.label, values: c.values })),
  { label: "drupal app, 2 web, apache, BALANCEID", values: sshValues({ app: "drupal" }) },
  {
    label: "drupal app, 3 web, proxy-node, JSESSIONID|jsessionid, external share",
    values: sshValues({ app: "drupal", webCount: 3, engine: "proxy-node", stickysession: "JSESSIONID|jsessionid", share: "external" }),
  },
  { label: "docker target, 2 web, apache (with the container entrypoint)", values: dockerValues() },
  { label: "https, 2 web, apache, HSTS", values: withTls(sshValues(), { hstsMaxAge: 31536000 }), secrets: { ...SECRETS, tlsPrivateKey: leaf.key } },
  {
    label: "https, 2 web, proxy-node, TLS 1.3 only, no redirect",
    values: withTls(sshValues({ engine: "proxy-node" }), { minVersion: "TLSv1.3", redirect: false, httpsPort: 8443 }),
    secrets: { ...SECRETS, tlsPrivateKey: leaf.key },
  },
];

/** Identical payloads (the same web server in several configs) are validated once. */
const cache = new Map<string, ValidationRun>();

function validate(m: ClusterModel, p: HostPayload, files: PayloadFile[]): ValidationRun {
  const script = checkScript(m, p, files);
  const key = crypto.createHash("sha256").update(script).update(JSON.stringify(files)).digest("hex");
  let r = cache.get(key);
  if (!r) {
    r = validateInContainer(files, script);
    cache.set(key, r);
  }
  return r;
}

describe("rendered files pass the real tools on Debian bookworm", function () {
  before(function () {
    // The first build installs apache2, PHP and MariaDB from Debian's mirror.
    this.timeout(30 * 60_000);
    requireDocker();
    ensureValidatorImage((s) => console.log(`      ${s}`));
  });
  after(() => ca.remove());

  for (const c of configs) {
    describe(c.label, () => {
      const m = model(c.values);
      const payloads = buildPayloads(m, c.secrets ?? SECRETS, ARTIFACTS);
      for (const p of payloads) {
        const files = checkedFiles(m, p);
        it(`${p.host.name}: ${files.length} files`, function () {
          this.timeout(5 * 60_000);
          const r = validate(m, p, files);
          const show = `\n--- validator output (${p.host.name}) ---\n${r.output}`;
          assert.equal(r.status, 0, `validation failed${show}`);
          assert.doesNotMatch(r.output, /### FAILED/, show);
          const apache = files.some((f) => f.path.startsWith("/etc/apache2/"));
          if (apache) {
            assert.match(r.output, /Syntax OK/, show);
            const modules = r.output
              .split("\n")
              .filter((l) => l.startsWith("module: "))
              .map((l) => l.slice(8).trim());
            const sites = r.output
              .split("\n")
              .filter((l) => l.startsWith("site: "))
              .map((l) => l.slice(6).trim());
            if (p.host.role === "balancer") {
              for (const mod of apacheBalancerModules(m)) assert.ok(modules.includes(`${mod}_module (shared)`), `${mod} not loaded${show}`);
              assert.deepEqual(sites, ["drupal-cluster-balancer.conf"], show);
            } else {
              for (const mod of ["rewrite", "headers", "php"])
                assert.ok(
                  modules.some((x) => x.startsWith(`${mod}`)),
                  `${mod} not loaded${show}`,
                );
              assert.deepEqual(sites, ["drupal-cluster-web.conf"], show);
            }
          }
          if (p.host.role === "data") {
            assert.match(r.output, new RegExp(`^option: bind-address\\s+${m.data.host.clusterAddress.replace(/\./g, "\\.")}$`, "m"), show);
            assert.match(r.output, new RegExp(`^option: port\\s+${m.data.port}$`, "m"), show);
            const grants = r.output
              .split("\n")
              .filter((l) => l.startsWith("grant: "))
              .map((l) => l.slice(7).trim())
              .sort();
            assert.deepEqual(grants, m.web.map((w) => `${m.data.user}@${w.host.clusterAddress}`).sort(), show);
          }
          const php = files.filter((f) => f.path.endsWith(".php")).length;
          assert.equal((r.output.match(/^No syntax errors detected in /gm) ?? []).length, php, show);
        });
      }
    });
  }
});
