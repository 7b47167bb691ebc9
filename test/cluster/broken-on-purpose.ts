/**
 * Clusters broken on purpose, the quick way an operator's slip would break them
 * (a rendered file edited on the host and its service reloaded, a service
 * stopped): verify must FAIL exactly the checks that see it, then PASS again
 * once the host is as it was. The original file is put back byte for byte with
 * its mode and owner, so the next `up` finds nothing to repair.
 */
import * as assert from "node:assert/strict";
import { VerifyTarget } from "../../ops/verify";
import { onHost, RunningCluster } from "../support/local-cluster";
import { assertVerdicts, untilVerdict, verifyFrom } from "./verify";

const WEB_VHOST = "/etc/apache2/sites-available/drupal-cluster-web.conf";
const BALANCER_VHOST = "/etc/apache2/sites-available/drupal-cluster-balancer.conf";
const PROXY_NODE_CONFIG = "/etc/proxy-node/config.json";

function sh(c: RunningCluster, host: string, script: string): string {
  const r = onHost(c.model, host, script);
  assert.equal(r.code, 0, `${host}: ${script}\n${r.out}`);
  return r.out;
}

/** `edit` changes `file` on each host (then `reload`); `body` runs; the file comes back as it was, whatever happened. */
async function whileEdited(c: RunningCluster, hosts: string[], file: string, edit: string, reload: string, body: () => Promise<void>): Promise<void> {
  const keep = `/root/verify-original-${file.replace(/\//g, "_")}`;
  const edited: string[] = [];
  try {
    for (const h of hosts) {
      sh(c, h, `cp -p ${file} ${keep}`);
      edited.push(h);
      sh(c, h, `${edit} && ! cmp -s ${file} ${keep} && ${reload}`);
    }
    await body();
  } finally {
    for (const h of edited) sh(c, h, `cp -p ${keep} ${file} && rm ${keep} && ${reload}`);
  }
}

export function registerBrokenOnPurpose(get: () => RunningCluster, target: () => Promise<VerifyTarget>): void {
  it("verify: a sticky cookie whose Domain does not match the URL (web servers' vhost edited, reloaded) FAILs the cookie jar and stickiness; restored, all PASS", async () => {
    const c = get();
    const t = await target();
    // The CO flag is cookie:value:domain:lifetime:path; the domain becomes one the URL's host cannot match.
    const edit = `sed -i 's/\\(\\[CO=[^:]*:[^:]*:\\)[^:]*:/\\1verify-broken.example:/' ${WEB_VHOST}`;
    await whileEdited(
      c,
      c.model.web.map((w) => w.host.name),
      WEB_VHOST,
      edit,
      "service apache2 reload",
      async () => {
        const r = await untilVerdict(c, t, "cookie jar", "FAIL", 30000);
        assert.match(r.saw, /Domain=verify-broken\.example does not domain-match/);
        assertVerdicts(await verifyFrom(c, t), { sticky: "FAIL", "cookie jar": "FAIL" });
      },
    );
    await untilVerdict(c, t, "cookie jar", "PASS", 30000);
    assertVerdicts(await verifyFrom(c, t));
  });

  it("verify: the manager opened to everyone (apache: Require all granted; proxy-node: allow 0.0.0.0/0, reloaded) FAILs the allowlist seen from outside it; restored, all PASS", async () => {
    const c = get();
    const t = await target();
    const apache = c.model.balancer.engine === "apache";
    const file = apache ? BALANCER_VHOST : PROXY_NODE_CONFIG;
    const edit = apache
      ? `sed -i 's/^\\(\\s*\\)Require ip .*/\\1Require all granted/' ${file}`
      : `node -e 'const fs = require("fs"); const c = JSON.parse(fs.readFileSync("${file}", "utf8")); c.manager.allow = ["0.0.0.0/0"]; fs.writeFileSync("${file}", JSON.stringify(c, null, 2))'`;
    const reload = apache ? "service apache2 reload" : "proxy-node-service reload";
    await whileEdited(c, [c.model.balancer.host.name], file, edit, reload, async () => {
      const r = await untilVerdict(c, t, "manager allowlist", "FAIL", 30000);
      assert.match(r.saw, /open to a client outside the allowlist/);
      assertVerdicts(await verifyFrom(c, t), { "manager allowlist": "FAIL" });
    });
    await untilVerdict(c, t, "manager allowlist", "PASS", 30000);
    assertVerdicts(await verifyFrom(c, t));
  });

  it("verify: a web server down (lb2's Apache stopped) FAILs spread, stickiness, its direct URL and the members' health; started again, all PASS", async () => {
    const c = get();
    const t = await target();
    const down = c.model.web[1].host.name;
    sh(c, down, "service apache2 stop");
    try {
      // Until the balancer's health checks have seen it (proxy-node's fall count, then Apache's manager).
      await untilVerdict(c, t, "members healthy", "FAIL", 60000);
      assertVerdicts(await verifyFrom(c, t), { spread: "FAIL", sticky: "FAIL", [`direct ${down}`]: "FAIL", "members healthy": "FAIL" });
    } finally {
      sh(c, down, "service apache2 start");
    }
    await untilVerdict(c, t, "members healthy", "PASS", (c.model.balancer.retry + 60) * 1000);
    assertVerdicts(await verifyFrom(c, t));
  });
}
