// Agent mode against a real Apache 2.4 balancer-manager (Debian's apache2-bin, installed by scripts/bootstrap).
import { strict as assert } from "node:assert";
import { spawn, ChildProcess, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, chmodSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMember, closeAll, until, request, freePort } from "../helpers";
import { ApacheAgent } from "../../src/agent";
import { silentLogger } from "../../src/log";

const APACHE = "/usr/sbin/apache2";
const MODULES = "/usr/lib/apache2/modules";

describe("agent: real Apache 2.4 balancer-manager", function () {
  this.timeout(30_000);
  let apache: ChildProcess | null = null;
  let dir = "";

  before(function () {
    if (!existsSync(APACHE) || !existsSync(join(MODULES, "mod_proxy_balancer.so"))) {
      throw new Error("apache2 is not installed (Debian package apache2-bin): run scripts/bootstrap");
    }
  });
  afterEach(async () => {
    if (apache?.pid && apache.exitCode === null) {
      apache.kill("SIGTERM");
      await new Promise((r) => apache?.once("exit", r));
    }
    apache = null;
    await closeAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("disable, enable and drain a member the way Apache 2.4 requires (nonce, Referer)", async function () {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const port = await freePort();
    dir = mkdtempSync(join(tmpdir(), "proxy-node-apache-"));
    chmodSync(dir, 0o777);
    const mods = ["mpm_event", "authn_core", "authz_core", "authz_host", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests", "slotmem_shm"];
    const root = process.getuid?.() === 0;
    writeFileSync(
      join(dir, "httpd.conf"),
      `ServerRoot ${dir}
ServerName 127.0.0.1
${mods.map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`).join("\n")}
${root ? "User www-data\nGroup www-data" : ""}
PidFile ${dir}/httpd.pid
DefaultRuntimeDir ${dir}
Mutex file:${dir} default
ErrorLog ${dir}/error.log
Listen 127.0.0.1:${port}
<Proxy balancer://drupal>
  BalancerMember ${lb1.url} route=lb1
  BalancerMember ${lb2.url} route=lb2
  ProxySet stickysession=BALANCEID
</Proxy>
<Location /balancer-manager>
  SetHandler balancer-manager
  Require ip 127.0.0.1
</Location>
<Location />
  Require all granted
</Location>
ProxyPass /balancer-manager !
ProxyPass / balancer://drupal/
`,
    );
    const check = spawnSync(APACHE, ["-t", "-f", join(dir, "httpd.conf")], { encoding: "utf8" });
    assert.equal(check.status, 0, `apache2 -t refused the test config: ${check.stderr}`);
    apache = spawn(APACHE, ["-f", join(dir, "httpd.conf"), "-DFOREGROUND"], { stdio: "ignore" });
    const managerUrl = `http://127.0.0.1:${port}/balancer-manager`;
    await until(async () => (await request(port, { path: "/balancer-manager" }).catch(() => ({ status: 0 }))).status === 200, "Apache up");
    const sticky = async (): Promise<string> => (await request(port, { path: "/", headers: { Cookie: "BALANCEID=balancer.lb2" } })).body;
    assert.equal(await sticky(), "lb2");

    const agent = new ApacheAgent({ managerUrl, balancer: "drupal" }, silentLogger);
    assert.ok(await agent.setEnabled(lb2.url, false));
    assert.equal(await sticky(), "lb1", "disabled in Apache: sticky client fails over");
    assert.ok(await agent.setEnabled(lb2.url, true));
    assert.equal(await sticky(), "lb2", "enabled again");
    assert.ok(await agent.setFlags(lb2.url, { N: 1 }));
    assert.equal(await sticky(), "lb2", "draining: sticky client stays");
    const page = (await request(port, { path: "/balancer-manager" })).body;
    assert.match(page, /Drn/);
  });
});
