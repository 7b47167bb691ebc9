/**
 * Drupal's cron, once per period for the whole cluster (issue 11): the
 * `cron.periodSeconds` setting and the `cronKey` secret's rule; what the payload
 * renders (the systemd timer and service, the loop for hosts without systemd,
 * both from one script and one period; curl's config with the key; the probe's
 * endpoint; Drupal's key step); where the key may appear; and the loop and the
 * endpoint run for real in the validator container.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { CRON_PERIOD } from "../../infra/config/cron";
import { checkSecret } from "../../infra/config/secrets";
import { ClusterModel } from "../../infra/model/types";
import {
  CRON_CURL_CONFIG,
  CRON_KEY_FILE,
  CRON_SCRIPT,
  CRON_SERVICE,
  CRON_TIMER,
  CRON_UNIT,
  DRUPAL_CRON_KEY_SCRIPT,
  PROBE_CRON_PAGE,
} from "../../infra/payload/cron";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload, PayloadFile } from "../../infra/payload/types";
import { ARTIFACTS, dockerValues, model, OTHER_SECRETS, PROJECT, SECRETS, sshValues, Values, refusal } from "../support/cluster-configs";
import { directives, fileOf, host } from "../support/payloads";
import { ensureValidatorImage, q, requireDocker, validateInContainer } from "../support/validator";

const KEY = `${PROJECT}:cron.periodSeconds`;

function withPeriod(values: Values, periodSeconds: unknown): Values {
  return { ...values, cron: { periodSeconds } };
}

/** The value of `Key=` lines in a unit file. */
function unitValues(content: string, key: string): string[] {
  return directives(content)
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe("cron: settings", () => {
  it(`cron.periodSeconds: ${CRON_PERIOD.fallback} when not set; ${CRON_PERIOD.min} and ${CRON_PERIOD.max} accepted, as a number or as text`, () => {
    assert.equal(model(sshValues()).cron.periodSeconds, CRON_PERIOD.fallback);
    assert.equal(model(withPeriod(sshValues(), CRON_PERIOD.min)).cron.periodSeconds, CRON_PERIOD.min);
    assert.equal(model(withPeriod(sshValues(), CRON_PERIOD.max)).cron.periodSeconds, CRON_PERIOD.max);
    // `pulumi config set --path cron.periodSeconds 60` stores text.
    assert.equal(model(withPeriod(sshValues(), "60")).cron.periodSeconds, 60);
  });

  for (const bad of [9, 0, -300, 86_401, 10.5, "5m", "", true]) {
    if (bad === "") continue; // empty text means "not set": the default
    it(`cron.periodSeconds ${JSON.stringify(bad)}: refused, naming the key, the range and why the floor`, () => {
      const e = refusal(withPeriod(sshValues(), bad));
      assert.equal(e.key, KEY);
      assert.match(e.message, /expected a whole number from 10 to 86400, got/);
      assert.match(e.message, /not below 10, or a run could still be going when the next is due/);
    });
  }

  it("an unknown key under cron is refused (a typo must not fall back to the default)", () => {
    const e = refusal({ ...sshValues(), cron: { period: 60 } });
    assert.equal(e.key, `${PROJECT}:cron.period`);
    assert.match(e.message, /unknown setting; accepted here: periodSeconds/);
  });

  it("cronKey: 16 to 128 URL-safe characters; others refused without showing the value", () => {
    for (const ok of ["a".repeat(16), "Ab0_-".repeat(25).slice(0, 128), "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"]) {
      checkSecret(PROJECT, "s", "cronKey", ok);
    }
    for (const bad of [
      "",
      "a".repeat(15),
      "a".repeat(129),
      "with/slash-0123456789",
      "with space 0123456789",
      "pct%2F0123456789abc",
      "newline\n0123456789abc",
    ]) {
      assert.throws(
        () => checkSecret(PROJECT, "s", "cronKey", bad),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.key === `${PROJECT}:cronKey` &&
          (bad === "" || !e.message.includes(bad)) &&
          /16 to 128 letters, digits, - and _/.test(e.message),
      );
    }
  });
});

interface Case {
  label: string;
  values: Values;
}

const CASES: Case[] = [
  { label: "ssh, apache, probe", values: sshValues() },
  { label: "ssh, proxy-node, probe, 3 web", values: sshValues({ engine: "proxy-node", webCount: 3 }) },
  { label: "ssh, apache, drupal", values: sshValues({ app: "drupal" }) },
  { label: "docker, apache, probe", values: dockerValues() },
];

describe("cron: rendered", () => {
  for (const c of CASES) {
    describe(c.label, () => {
      const m = model(withPeriod(c.values, 45));
      const payloads = buildPayloads(m, SECRETS, ARTIFACTS);
      const balancer = host(payloads, "balancer");
      const probe = m.app.kind === "probe";

      it("balancer: one service, last, started by its script; the script, the unit and the timer are watched, curl's config is not", () => {
        const svc = balancer.services[balancer.services.length - 1];
        assert.equal(svc.name, CRON_SERVICE);
        assert.equal(svc.start, `${CRON_SCRIPT} start`);
        assert.equal(svc.reload, `${CRON_SCRIPT} restart`);
        assert.equal(svc.status, `${CRON_SCRIPT} status`);
        assert.deepEqual([...svc.watch].sort(), [CRON_SCRIPT, CRON_TIMER, CRON_UNIT].sort());
        assert.ok(balancer.packages.includes("curl"));
        // Hosts without systemd start it at boot like every other service.
        const boot = balancer.files.find((f) => f.path.endsWith(`-${CRON_SERVICE}`) && f.path.includes("/boot.d/"));
        assert.ok(boot?.content.includes(svc.start), "no boot script for the cron service");
      });

      it("one period and one run for both ways: the timer's OnActiveSec and OnUnitActiveSec, the loop's PERIOD, the unit's ExecStart", () => {
        const timer = fileOf(balancer, CRON_TIMER).content;
        assert.deepEqual(unitValues(timer, "OnActiveSec"), ["45s"]);
        assert.deepEqual(unitValues(timer, "OnUnitActiveSec"), ["45s"]);
        assert.deepEqual(unitValues(timer, "AccuracySec"), ["100ms"]);
        assert.deepEqual(unitValues(timer, "WantedBy"), ["timers.target"], "the timer must be enabled to come back after a reboot");
        const unit = fileOf(balancer, CRON_UNIT).content;
        assert.deepEqual(unitValues(unit, "Type"), ["oneshot"]);
        assert.deepEqual(unitValues(unit, "ExecStart"), [`${CRON_SCRIPT} run`]);
        const script = fileOf(balancer, CRON_SCRIPT);
        assert.equal(script.mode, "0755");
        assert.match(script.content, /^PERIOD=45$/m);
        assert.match(script.content, new RegExp(`^CURL_CONFIG=${CRON_CURL_CONFIG}$`, "m"));
        // The loop's run is the unit's run: the same function of the same script.
        assert.match(script.content, /^\s+run >>"\$LOG" 2>&1 \|\| true$/m);
        assert.match(script.content, /^if \[ "\$\{1:-\}" = run \]; then\n\s+run\n/m);
      });

      it("curl's config: POST target on the balancer's own listener, the public name as Host, the key; root only, a secret", () => {
        const f = fileOf(balancer, CRON_CURL_CONFIG);
        assert.deepEqual([f.mode, f.owner, f.secret], ["0600", "root:root", true]);
        const lines = directives(f.content);
        const path = probe ? "/cron.php" : `/cron/${SECRETS.cronKey}`;
        const host = m.target === "docker" ? "localhost" : "cluster.example.org";
        const expected = [`url = "http://127.0.0.1:${m.balancer.httpPort}${path}"`, `header = "Host: ${host}"`];
        if (probe) expected.push(`header = "X-Drupal-Cluster-Cron-Key: ${SECRETS.cronKey}"`);
        assert.deepEqual(lines, expected);
      });

      it("the key is only in secret files, never in a step's or a service's command (ps would show it) nor in a file delivered in plain", () => {
        const holders: string[] = [];
        for (const p of payloads) {
          for (const f of p.files) {
            if (!f.content.includes(SECRETS.cronKey)) continue;
            assert.ok(f.secret, `${p.host.name}:${f.path} holds the key but is not a secret`);
            holders.push(`${p.host.name}:${f.path}`);
          }
          const commands = [...p.prepare, ...p.configure, ...p.afterStart].map((s) => s.run);
          for (const s of p.services) commands.push(s.start, s.reload, s.stop, s.status);
          for (const cmd of commands) assert.ok(!cmd.includes(SECRETS.cronKey), `${p.host.name}: the key is in the command ${cmd}`);
        }
        assert.deepEqual(holders.sort(), [`balancer:${CRON_CURL_CONFIG}`, ...m.web.map((w) => `${w.host.name}:${CRON_KEY_FILE}`)].sort());
      });

      it("web servers: the key readable by PHP only (0640 root:www-data); the probe's endpoint, or Drupal's key step", () => {
        for (const w of m.web) {
          const p = host(payloads, w.host.name);
          const key = fileOf(p, CRON_KEY_FILE);
          assert.deepEqual([key.mode, key.owner, key.secret, key.content], ["0640", "root:www-data", true, `${SECRETS.cronKey}\n`]);
          if (probe) {
            const page = fileOf(p, PROBE_CRON_PAGE).content;
            assert.match(page, /hash_equals\(hash\('sha256', \$key\), hash\('sha256', \$given\)\)/);
            assert.match(page, /\$_SERVER\['HTTP_X_DRUPAL_CLUSTER_CRON_KEY'\]/);
            assert.ok(!p.files.some((f) => f.path === DRUPAL_CRON_KEY_SCRIPT));
          } else {
            const step = p.configure.find((s) => s.name === "drupal-cron-key");
            assert.ok(step, "no step sets Drupal's cron key");
            assert.equal(step.run, DRUPAL_CRON_KEY_SCRIPT);
            assert.deepEqual(step.watch, [CRON_KEY_FILE, DRUPAL_CRON_KEY_SCRIPT]);
            assert.match(fileOf(p, DRUPAL_CRON_KEY_SCRIPT).content, /php:eval '\\Drupal::state\(\)->set\("system\.cron_key", trim\(file_get_contents\(/);
            assert.ok(!p.files.some((f) => f.path === PROBE_CRON_PAGE));
          }
        }
      });

      it(`the data server's bootstrap SQL ${probe ? "creates" : "does not create"} the probe's cron table`, () => {
        const sql = fileOf(host(payloads, "data"), "/etc/drupal-cluster/bootstrap.sql").content;
        assert.equal(sql.includes("CREATE TABLE IF NOT EXISTS `drupal`.`probe_cron_runs`"), probe);
      });
    });
  }

  const changed = (a: HostPayload[], b: HostPayload[]): string[] =>
    a.flatMap((p, i) => {
      const other = new Map(b[i].files.map((f): [string, PayloadFile] => [f.path, f]));
      return p.files.filter((f) => other.get(f.path)?.content !== f.content).map((f) => `${p.host.name}:${f.path}`);
    });

  it("a new period rewrites the balancer's script and timer only (the cron service restarts, nothing else)", () => {
    const a = buildPayloads(model(sshValues()), SECRETS, ARTIFACTS);
    const b = buildPayloads(model(withPeriod(sshValues(), 10)), SECRETS, ARTIFACTS);
    assert.deepEqual(changed(a, b).sort(), [`balancer:${CRON_SCRIPT}`, `balancer:${CRON_TIMER}`].sort());
  });

  it("a new key rewrites the secret files that hold it, none a service watches: nothing restarts", () => {
    const m = model(sshValues());
    const a = buildPayloads(m, SECRETS, ARTIFACTS);
    const b = buildPayloads(m, { ...SECRETS, cronKey: OTHER_SECRETS.cronKey }, ARTIFACTS);
    const diff = changed(a, b);
    assert.deepEqual(diff.sort(), [`balancer:${CRON_CURL_CONFIG}`, ...m.web.map((w) => `${w.host.name}:${CRON_KEY_FILE}`)].sort());
    for (const p of a) for (const s of p.services) for (const d of diff) assert.ok(!s.watch.includes(d.split(":")[1]), `${s.name} watches ${d}`);
  });
});

/** The balancer's files with a short period, which the settings would refuse: the loop's test needs seconds, not minutes. */
function shortPeriodBalancer(m: ClusterModel, periodSeconds: number): PayloadFile[] {
  const p = host(buildPayloads({ ...m, cron: { periodSeconds } }, SECRETS, ARTIFACTS), "balancer");
  return [fileOf(p, CRON_SCRIPT), fileOf(p, CRON_CURL_CONFIG)];
}

describe("cron: the loop and the endpoint, run in the validator container", function () {
  before(function () {
    this.timeout(30 * 60_000);
    requireDocker();
    ensureValidatorImage((s) => console.log(`      ${s}`));
  });

  it("without systemd: start runs `run` every period in a loop of its own (started once however often start is called), status follows it, stop ends it at once, asleep or not; a failed run does not end the loop", function () {
    this.timeout(120_000);
    const files = shortPeriodBalancer(model(sshValues()), 1);
    // A curl that records its arguments and fails every third call; the key must not be among the arguments.
    const fakeCurl: PayloadFile = {
      path: "/usr/local/bin/curl",
      content:
        '#!/bin/sh\necho "$(date +%s.%N) $*" >>/tmp/calls\nn=$(wc -l </tmp/calls)\nif [ $((n % 3)) -eq 0 ]; then echo "HTTP 503" >&2; exit 22; fi\necho "cron ran on lb1 (HTTP 200)"\n',
      mode: "0755",
      owner: "root:root",
      secret: false,
    };
    const cron = CRON_SCRIPT;
    const script = [
      "set -u",
      "export PATH=/usr/local/bin:$PATH",
      // No procps in the image: the processes whose command line holds $1 (the glob is expanded before this loop's own processes exist).
      `procs() { n=0; for f in /proc/[0-9]*/cmdline; do if tr '\\0' ' ' <"$f" 2>/dev/null | grep -q "$1"; then n=$((n + 1)); fi; done; echo $n; }`,
      `${cron} status && { echo "FAIL: status before start"; exit 1; }`,
      `${cron} start && ${cron} start && ${cron} start || { echo "FAIL: start"; exit 1; }`,
      `${cron} status || { echo "FAIL: status after start"; exit 1; }`,
      `echo "loops: $(procs 'drupal-cluster-cron loop')"`,
      "sleep 6.5",
      `${cron} stop || { echo "FAIL: stop"; exit 1; }`,
      `${cron} status && { echo "FAIL: status after stop"; exit 1; }`,
      `echo "left: $(procs 'drupal-cluster-cron')"`,
      'echo "calls: $(wc -l </tmp/calls)"',
      "sleep 2",
      'echo "calls after stop: $(wc -l </tmp/calls)"',
      // A loop asleep in a long period: stop must end it at once, not when it wakes.
      `sed -i 's/^PERIOD=1$/PERIOD=300/' ${cron}`,
      `${cron} start && sleep 1 && ${cron} status || { echo "FAIL: start with a long period"; exit 1; }`,
      "t0=$(date +%s%N)",
      `${cron} stop || { echo "FAIL: stop of a sleeping loop"; exit 1; }`,
      'echo "stop took ms: $((($(date +%s%N) - t0) / 1000000))"',
      `echo "left after the long period: $(procs 'drupal-cluster-cron')"`,
      "echo '--- calls'; cat /tmp/calls; echo '--- log'; cat /var/log/drupal-cluster-cron.log",
    ].join("\n");
    const r = validateInContainer([...files, fakeCurl], script);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /^loops: 1$/m, r.output);
    assert.match(r.output, /^left: 0$/m, r.output);
    assert.match(r.output, /^left after the long period: 0$/m, r.output);
    const stopMs = Number(/^stop took ms: (\d+)$/m.exec(r.output)?.[1]);
    assert.ok(stopMs < 2000, `stopping a loop asleep in a 300 s period took ${stopMs} ms:\n${r.output}`);
    const calls = Number(/^calls: (\d+)$/m.exec(r.output)?.[1]);
    // The first run one period after the start, then one a period: 6 in 6.5 s (a second's slack for the start).
    assert.ok(calls >= 5 && calls <= 7, `${calls} runs in 6.5 s with a period of 1 s:\n${r.output}`);
    assert.match(r.output, new RegExp(`^calls after stop: ${calls}$`, "m"), r.output);
    const args = r.output.split("--- calls")[1].split("--- log")[0];
    assert.match(args, /--request POST .*--config \/etc\/drupal-cluster\/cron\.curl/);
    assert.ok(!args.includes(SECRETS.cronKey), "the key is on curl's command line");
    const log = r.output.split("--- log")[1];
    assert.match(log, /cron ran: cron ran on lb1/);
    assert.match(log, /cron failed: HTTP 503/);
  });

  it("the probe's endpoint: POST with the key runs (here: fails at the database, which this container lacks); a wrong, empty or missing key, or a GET, is refused before it", function () {
    this.timeout(120_000);
    const lb1 = host(buildPayloads(model(sshValues()), SECRETS, ARTIFACTS), "lb1");
    const files = lb1.files.filter((f) => f.path.startsWith("/var/www/probe/") || f.path === CRON_KEY_FILE);
    // PHP's CLI takes $_SERVER from the environment, as the web server would fill it.
    const call = (label: string, env: string): string => `echo "${label}: $(env ${env} php -d display_errors=0 ${PROBE_CRON_PAGE} | head -1)"`;
    const h = "HTTP_X_DRUPAL_CLUSTER_CRON_KEY";
    const script = [
      call("right key", `REQUEST_METHOD=POST ${h}=${q(SECRETS.cronKey)}`),
      call("wrong key", `REQUEST_METHOD=POST ${h}=${q(OTHER_SECRETS.cronKey)}`),
      call("key with more", `REQUEST_METHOD=POST ${h}=${q(`${SECRETS.cronKey}x`)}`),
      call("empty key", `REQUEST_METHOD=POST ${h}=`),
      call("no key", "REQUEST_METHOD=POST"),
      call("GET with the key", `REQUEST_METHOD=GET ${h}=${q(SECRETS.cronKey)}`),
    ].join("\n");
    const r = validateInContainer(files, script);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /^right key: cron could not record its run on lb1$/m, r.output);
    for (const label of ["wrong key", "key with more", "empty key", "no key"]) assert.match(r.output, new RegExp(`^${label}: forbidden$`, "m"), r.output);
    assert.match(r.output, /^GET with the key: cron runs on POST only$/m, r.output);
  });
});

describe("Drupal's cron key stays out of the balancer's logs", () => {
  for (const engine of ["apache", "proxy-node"] as const) {
    it(`engine ${engine}: proxy-node's request log withholds /cron/...; Apache's access log skips it`, () => {
      const b = host(buildPayloads(model(sshValues({ engine, app: "drupal" })), SECRETS, ARTIFACTS), "balancer");
      const cfg = JSON.parse(fileOf(b, "/etc/proxy-node/config.json").content) as { log: { withholdPaths?: string[] } };
      assert.deepEqual(cfg.log.withholdPaths, ["/cron/"]);
      if (engine === "apache") {
        const vhost = fileOf(b, "/etc/apache2/sites-available/drupal-cluster-balancer.conf").content;
        assert.match(vhost, /^\s*SetEnvIf Request_URI "\^\/cron\/" drupal_cluster_nolog$/m);
        assert.match(vhost, /^\s*CustomLog .* env=!drupal_cluster_nolog$/m);
      }
    });
  }
  it("the probe app sends its key in a header, so nothing is withheld", () => {
    const b = host(buildPayloads(model(sshValues({ engine: "proxy-node" })), SECRETS, ARTIFACTS), "balancer");
    const cfg = JSON.parse(fileOf(b, "/etc/proxy-node/config.json").content) as { log: { withholdPaths?: string[] } };
    assert.equal(cfg.log.withholdPaths, undefined);
  });
});
