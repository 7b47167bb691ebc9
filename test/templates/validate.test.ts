import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { apacheBalancerModules } from "../../infra/payload/balancer";
import { buildPayloads } from "../../infra/payload/index";
import { PROVISION_PATH, provisionScript } from "../../infra/targets/docker/provision";
import { HostPayload, PayloadFile } from "../../infra/payload/types";
import { ClusterModel } from "../../infra/model/types";
import { ARTIFACTS, dockerValues, model, renderCases, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { ensureValidatorImage, q, requireDocker, validateInContainer, ValidationRun } from "../support/validator";

/**
 * Every rendered file, checked on Debian bookworm by the tool that will read it:
 * `apache2ctl -t` over the whole Apache tree with our modules, sites and confs
 * enabled; `php -l`; MariaDB's own option parsing (and the bootstrap SQL run
 * twice against a real server, since it must converge); `sh -n`/`bash -n`; JSON.
 */

interface Config {
  label: string;
  values: Values;
}

const configs: Config[] = [
  ...renderCases().map((c) => ({ label: c.label, values: c.values })),
  { label: "drupal app, 2 web, apache, BALANCEID", values: sshValues({ app: "drupal" }) },
  { label: "drupal app, 3 web, proxy-node, JSESSIONID|jsessionid, external share", values: sshValues({ app: "drupal", webCount: 3, engine: "proxy-node", stickysession: "JSESSIONID|jsessionid", share: "external" }) },
  { label: "docker target, 2 web, apache (with the container entrypoint)", values: dockerValues() },
];

/** The docker target's entrypoint, from the same function the target uses. */
function provisionFile(m: ClusterModel, p: HostPayload): PayloadFile {
  return { path: PROVISION_PATH, content: provisionScript(m, p), mode: "0755", owner: "root:root", secret: false };
}

function checkScript(m: ClusterModel, p: HostPayload, files: PayloadFile[]): string {
  const lines = [
    "exec 2>&1",
    "fail=0",
    `check() { echo "### $1"; shift; if "$@"; then echo "### ok"; else echo "### FAILED (exit $?)"; fail=1; fi; }`,
  ];
  for (const f of files) lines.push(`chown ${q(f.owner)} ${q(f.path)} || fail=1`);
  const paths = files.map((f) => f.path);
  const apache = paths.some((x) => x.startsWith("/etc/apache2/"));
  if (apache && p.host.role === "balancer") {
    lines.push(`check "a2enmod balancer modules" a2enmod -q ${apacheBalancerModules(m).join(" ")}`);
    lines.push(`check "a2enconf drupal-cluster-proxy" a2enconf -q drupal-cluster-proxy`);
    lines.push(`check "a2dissite 000-default" a2dissite -q 000-default`);
    lines.push(`check "a2ensite drupal-cluster-balancer" a2ensite -q drupal-cluster-balancer`);
  }
  if (apache && p.host.role === "web") {
    lines.push(`check "a2enmod rewrite headers" a2enmod -q rewrite headers`);
    lines.push(`check "a2dissite 000-default" a2dissite -q 000-default`);
    lines.push(`check "a2ensite drupal-cluster-web" a2ensite -q drupal-cluster-web`);
  }
  if (apache) {
    // The payload's own enable step, as the host runs it.
    for (const s of p.configure.filter((x) => x.name.startsWith("enable-"))) lines.push(`check ${q(`payload step ${s.name}`)} sh -c ${q(s.run)}`);
    lines.push(`check "apache2ctl -t" apache2ctl -t`);
    lines.push(`echo "### loaded modules"; apache2ctl -M 2>/dev/null | sed 's/^/module: /'`);
    lines.push(`echo "### enabled sites"; ls /etc/apache2/sites-enabled | sed 's/^/site: /'`);
  }
  for (const f of files) {
    if (f.path.endsWith(".php")) lines.push(`check ${q(`php -l ${f.path}`)} php -l ${q(f.path)}`);
    if (f.path.endsWith(".json")) lines.push(`check ${q(`json ${f.path}`)} python3 -m json.tool ${q(f.path)} /dev/null`);
    if (f.content.startsWith("#!/bin/sh")) lines.push(`check ${q(`sh -n ${f.path}`)} sh -n ${q(f.path)}`);
    if (f.content.startsWith("#!/bin/bash")) lines.push(`check ${q(`bash -n ${f.path}`)} bash -n ${q(f.path)}`);
  }
  if (paths.some((x) => x.endsWith(".cnf"))) {
    // Parses every option file MariaDB reads (ours included) and prints the values in effect.
    lines.push(`check "mariadbd --help --verbose" sh -c 'mariadbd --user=mysql --help --verbose > /tmp/mariadb-options.txt'`);
    lines.push(`grep -E '^(bind-address|port|character-set-server|transaction-isolation) ' /tmp/mariadb-options.txt | sed 's/^/option: /'`);
  }
  for (const sql of paths.filter((x) => x.endsWith(".sql"))) {
    lines.push(
      "mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld",
      // Our cnf binds the cluster address, which this container lacks: socket only.
      "mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock >/tmp/mariadbd.log 2>&1 &",
      "for i in $(seq 1 60); do mariadb-admin --protocol=socket ping >/dev/null 2>&1 && break; sleep 0.5; done",
      `check ${q(`mariadb < ${sql}`)} sh -c ${q(`mariadb --protocol=socket < ${sql}`)}`,
      `check ${q(`mariadb < ${sql} (again: it converges)`)} sh -c ${q(`mariadb --protocol=socket < ${sql}`)}`,
      `mariadb --protocol=socket -N -e "SELECT CONCAT('grant: ', user, '@', host) FROM mysql.user WHERE user <> 'root' AND user <> 'mysql' AND user <> 'mariadb.sys' ORDER BY host"`,
      "mariadb-admin --protocol=socket shutdown >/dev/null 2>&1 || true",
    );
  }
  lines.push('echo "### result: $fail"', "exit $fail");
  return lines.join("\n") + "\n";
}

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

  for (const c of configs) {
    describe(c.label, () => {
      const m = model(c.values);
      const payloads = buildPayloads(m, SECRETS, ARTIFACTS);
      for (const p of payloads) {
        const files = p.files.filter((f) => !f.path.startsWith("/opt/proxy-node/dist/"));
        if (m.target === "docker") files.push(provisionFile(m, p));
        it(`${p.host.name}: ${files.length} files`, function () {
          this.timeout(5 * 60_000);
          const r = validate(m, p, files);
          const show = `\n--- validator output (${p.host.name}) ---\n${r.output}`;
          assert.equal(r.status, 0, `validation failed${show}`);
          assert.doesNotMatch(r.output, /### FAILED/, show);
          const apache = files.some((f) => f.path.startsWith("/etc/apache2/"));
          if (apache) {
            assert.match(r.output, /Syntax OK/, show);
            const modules = r.output.split("\n").filter((l) => l.startsWith("module: ")).map((l) => l.slice(8).trim());
            const sites = r.output.split("\n").filter((l) => l.startsWith("site: ")).map((l) => l.slice(6).trim());
            if (p.host.role === "balancer") {
              for (const mod of apacheBalancerModules(m)) assert.ok(modules.includes(`${mod}_module (shared)`), `${mod} not loaded${show}`);
              assert.deepEqual(sites, ["drupal-cluster-balancer.conf"], show);
            } else {
              for (const mod of ["rewrite", "headers", "php"]) assert.ok(modules.some((x) => x.startsWith(`${mod}`)), `${mod} not loaded${show}`);
              assert.deepEqual(sites, ["drupal-cluster-web.conf"], show);
            }
          }
          if (p.host.role === "data") {
            assert.match(r.output, new RegExp(`^option: bind-address\\s+${m.data.host.clusterAddress.replace(/\./g, "\\.")}$`, "m"), show);
            assert.match(r.output, new RegExp(`^option: port\\s+${m.data.port}$`, "m"), show);
            const grants = r.output.split("\n").filter((l) => l.startsWith("grant: ")).map((l) => l.slice(7).trim()).sort();
            assert.deepEqual(grants, m.web.map((w) => `${m.data.user}@${w.host.clusterAddress}`).sort(), show);
          }
          const php = files.filter((f) => f.path.endsWith(".php")).length;
          assert.equal((r.output.match(/^No syntax errors detected in /gm) ?? []).length, php, show);
        });
      }
    });
  }
});
