// A real Apache 2.4 balancer (Debian's apache2-bin) on loopback, as in
// test/agent/real-apache.test.ts: balancer://drupal over the given members
// and its balancer-manager.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, chmodSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request, freePort, until, type MemberServer } from "../helpers";
import { parseWorkerRows } from "../../src/apache-watch";

const APACHE = "/usr/sbin/apache2";
const MODULES = "/usr/lib/apache2/modules";

export function apacheInstalled(): boolean {
  return existsSync(APACHE) && existsSync(join(MODULES, "mod_proxy_balancer.so"));
}

export interface Apache {
  port: number;
  managerUrl: string;
  /** Status text of each worker, by route ("Init Dis", ...). */
  statuses(): Promise<Record<string, string>>;
  /** Which member answers a client pinned to `route`. */
  sticky(route: string): Promise<string>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What `apache2ctl graceful` (systemctl reload apache2) does: SIGUSR1. */
  graceful(): void;
}

export async function apacheBalancer(members: MemberServer[]): Promise<Apache> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "proxy-node-apache-pair-"));
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
${members.map((m) => `  BalancerMember ${m.url} route=${m.route}`).join("\n")}
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
  let child: ChildProcess | null = null;
  const managerUrl = `http://127.0.0.1:${port}/balancer-manager`;
  const a: Apache = {
    port,
    managerUrl,
    async statuses() {
      const page = await request(port, { path: "/balancer-manager" });
      const rows = parseWorkerRows(page.body, "drupal")?.rows ?? [];
      const out: Record<string, string> = {};
      for (const m of members) out[m.route] = rows.find((r) => r.url === m.url)?.status ?? "(missing)";
      return out;
    },
    async sticky(route: string) {
      return (await request(port, { path: "/", headers: { Cookie: `BALANCEID=balancer.${route}` } })).body;
    },
    async start() {
      child = spawn(APACHE, ["-f", join(dir, "httpd.conf"), "-DFOREGROUND"], { stdio: "ignore" });
      await until(async () => (await request(port, { path: "/balancer-manager" }).catch(() => ({ status: 0 }))).status === 200, "Apache up");
    },
    graceful() {
      child?.kill("SIGUSR1");
    },
    async stop() {
      const c = child;
      child = null;
      if (c?.pid && c.exitCode === null) {
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await exited;
      }
    },
  };
  await a.start();
  cleanups.push(async () => {
    await a.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return a;
}

const cleanups: Array<() => Promise<void>> = [];

export async function stopApaches(): Promise<void> {
  for (const c of cleanups.splice(0)) await c().catch(() => undefined);
}
