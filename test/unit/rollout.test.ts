import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "../../infra/config/errors";
import { validateConfig } from "../../infra/config/validate";
import { rolloutScripts } from "../../infra/payload/rollout";
import { dockerValues, model, PROJECT, sshValues, Values } from "../support/cluster-configs";

function refused(values: Values, key: string, mention: RegExp): void {
  assert.throws(
    () => validateConfig({ project: PROJECT, stack: "test" }, values),
    (e: unknown) => e instanceof ConfigError && e.key === `${PROJECT}:${key}` && mention.test(e.message) && e.message.includes(`${PROJECT}:${key}`),
  );
}

describe("rollout settings", () => {
  it("default: rolling, one web server at a time, 30 s of drain, 60 s of health gate", () => {
    assert.deepEqual(model(sshValues()).rollout, { mode: "rolling", batch: 1, drainSeconds: 30, gateSeconds: 60 });
  });

  it("takes parallel, a batch below the number of web servers, and drain and gate seconds", () => {
    const m = model({ ...sshValues({ webCount: 4 }), rollout: { mode: "rolling", batch: "3", drainSeconds: 0, gateSeconds: 600 } });
    assert.deepEqual(m.rollout, { mode: "rolling", batch: 3, drainSeconds: 0, gateSeconds: 600 });
    assert.equal(model({ ...sshValues(), rollout: { mode: "parallel", batch: 2 } }).rollout.mode, "parallel");
  });

  for (const [key, value, mention] of [
    ["mode", "canary", /"canary" is not accepted; use one of: rolling, parallel/],
    ["batch", 0, /whole number from 1 to 200/],
    ["batch", 2, /2 would take all 2 web servers out of rotation at once; use at most 1, or mode parallel/],
    ["drainSeconds", -1, /whole number from 0 to 3600/],
    ["drainSeconds", "30s", /whole number from 0 to 3600/],
    ["gateSeconds", 1, /whole number from 5 to 600/],
    ["drainTime", 5, /unknown setting; accepted here: mode, batch, drainSeconds, gateSeconds/],
  ] as const) {
    it(`refuses rollout.${key} ${JSON.stringify(value)}, naming it`, () => refused({ ...sshValues(), rollout: { [key]: value } }, `rollout.${key}`, mention));
  }

  it("is refused on the docker target, which replaces a changed container (nothing to drain there)", () => {
    refused({ ...dockerValues(), rollout: { mode: "rolling" } }, "rollout", /only used with target ssh/);
    assert.equal(model(dockerValues()).rollout.mode, "rolling");
  });
});

describe("rollout scripts (rendered)", () => {
  const m = model({ ...sshValues({ engine: "proxy-node" }), rollout: { drainSeconds: 12, gateSeconds: 45 } });
  const s = rolloutScripts(m, m.web[1]);

  it("are valid shell", () => {
    for (const [name, script] of Object.entries(s)) {
      const r = spawnSync("bash", ["-n", "-c", script], { encoding: "utf8" });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    }
  });

  it("drain: proxy-node on the balancer drains the member's route for drainSeconds (earlier once idle), marking that a rollout took it out", () => {
    assert.match(s.drain, /\/opt\/proxy-node\/bin\/proxy-node drain lb2 --config \/etc\/proxy-node\/config\.json --timeout 12 --idle 3 --keep-one/);
    assert.match(s.drain, /: > \/var\/lib\/drupal-cluster\/rollout\/lb2/);
    // A member an operator took out is left as it is; one not in the running balancer yet has nothing to drain.
    assert.match(s.drain, /case "\$st" in 'lb2 enabled '\*\)/);
    assert.match(s.drain, /rc = 3/);
  });

  /** Runs a script with a stand-in proxy-node: `status` prints STATUS, `drain` and `enable` record their call and exit RC. */
  function runWith(
    script: string,
    status: string,
    rc: number,
    marker: boolean,
  ): { rc: number | null; out: string; drained: boolean; calls: string; marker: boolean } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-drain-"));
    try {
      const bin = path.join(dir, "proxy-node");
      fs.writeFileSync(bin, `#!/bin/sh\ncase "$1" in status) echo "$STATUS";; drain|enable) echo "$1" >> ${dir}/calls; exit "$RC";; esac\n`, { mode: 0o755 });
      fs.writeFileSync(path.join(dir, "config.json"), "{}");
      const markers = path.join(dir, "rollout");
      if (marker) {
        fs.mkdirSync(markers);
        fs.writeFileSync(path.join(markers, "lb2"), "");
      }
      const sandboxed = script
        .replaceAll("/opt/proxy-node/bin/proxy-node", bin)
        .replaceAll("/etc/proxy-node/config.json", path.join(dir, "config.json"))
        .replaceAll("/var/lib/drupal-cluster/rollout", markers);
      const r = spawnSync("bash", ["-c", sandboxed], { encoding: "utf8", env: { ...process.env, STATUS: status, RC: String(rc) } });
      const calls = fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8").trim() : "";
      return { rc: r.status, out: r.stdout + r.stderr, drained: calls === "drain", calls, marker: fs.existsSync(path.join(markers, "lb2")) };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const drainRun = (status: string, rc: number, marker: boolean): ReturnType<typeof runWith> => runWith(s.drain, status, rc, marker);

  it("forget (rollout parallel, or the web server removed): a member a rollout left out is put back, one the balancer no longer has is only forgotten", () => {
    const back = runWith(s.forget, "lb2 disabled disabled", 0, true);
    assert.deepEqual([back.rc, back.calls, back.marker], [0, "enable", false]);
    const removed = runWith(s.forget, "", 3, true);
    assert.deepEqual([removed.rc, removed.marker, removed.out], [0, false, ""]);
    const failed = runWith(s.forget, "", 1, true);
    assert.equal(failed.marker, false);
    assert.match(failed.out, /rollout lb2: could not put it back in rotation \(proxy-node enable exited 1\); run: npm run undrain -- lb2 --stack test/);
    // No marker: nothing a rollout took out, nothing changed.
    assert.equal(runWith(s.forget, "lb2 draining draining", 0, false).calls, "");
  });

  it("drain, run: an enabled member is marked and drained, keeping one web server serving; a failed drain fails and keeps its mark", () => {
    assert.deepEqual(drainRun("lb2 enabled ok", 0, false), { rc: 0, out: "", drained: true, calls: "drain", marker: true });
    const failed = drainRun("lb2 enabled ok", 1, false);
    assert.deepEqual([failed.rc, failed.drained, failed.marker], [1, true, true]);
    // The last web server taking new clients: changed while it serves, and its enable step clears the mark.
    const last = drainRun("lb2 enabled ok", 4, false);
    assert.equal(last.rc, 0);
    assert.match(last.out, /rollout lb2: changed while it serves: no other web server takes new clients/);
  });

  it("drain, run: after a rollout that did not finish, drains again unless the member is already disabled; an operator's drain is left alone", () => {
    // Marked and disabled: the earlier rollout got it out; nothing to do.
    const done = drainRun("lb2 disabled disabled", 0, true);
    assert.deepEqual([done.rc, done.drained, done.marker], [0, false, true]);
    assert.match(done.out, /already out of rotation/);
    // Marked but still draining or enabled: the earlier drain failed halfway, so this one drains.
    assert.equal(drainRun("lb2 draining draining", 0, true).drained, true);
    assert.equal(drainRun("lb2 enabled ok", 0, true).drained, true);
    // Not marked and draining: an operator's choice.
    const operator = drainRun("lb2 draining draining", 0, false);
    assert.deepEqual([operator.rc, operator.drained, operator.marker], [0, false, false]);
    assert.match(operator.out, /an operator's choice/);
  });

  it("gate: the web server's own health check, 200 within gateSeconds, or an error naming the host, the check and the setting", () => {
    assert.match(s.gate, /curl -s -o \/dev\/null -w '%\{http_code\}' --max-time 2 -H 'Host: cluster\.example\.org' http:\/\/127\.0\.0\.1\/health\.php/);
    assert.match(s.gate, /\+ 45 \)\)/);
    assert.match(s.gate, /lb2: health gate failed: GET http:\/\/127\.0\.0\.1\/health\.php on lb2 answered/);
    assert.match(s.gate, /rollout\.gateSeconds/);
  });

  it("enable: only a member a rollout took out, waiting for the balancer's own health check; its check is the marker's absence", () => {
    assert.match(s.enable, /if \[ ! -e \/var\/lib\/drupal-cluster\/rollout\/lb2 \]; then .*exit 0; fi/);
    assert.match(s.enable, /proxy-node enable lb2 --config \/etc\/proxy-node\/config\.json --wait-healthy 45/);
    assert.equal(s.enableCheck, "[ ! -e /var/lib/drupal-cluster/rollout/lb2 ]");
  });

  it("the drupal app is gated on its login page", () => {
    const d = model({ ...sshValues({ app: "drupal" }) });
    assert.match(rolloutScripts(d, d.web[0]).gate, /http:\/\/127\.0\.0\.1\/user\/login/);
  });
});
