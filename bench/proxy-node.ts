// Benchmark (not a test): wrk on loopback with a sticky cookie against two
// single-worker nginx members, through proxy-node, Apache mod_proxy_balancer
// (event MPM), HAProxy and nginx, plus direct to one member. Interleaved
// repeats, medians. Every server is started here with its own config in a
// temp dir on 127.0.0.1 and stopped at the end; system services are not used.
//
//   npx ts-node bench/proxy-node.ts            (root: npm run bench)
//   BENCH_DURATION=5 BENCH_REPEATS=3 BENCH_CONNECTIONS=64 BENCH_MEMORY=1 to adjust
import { spawn, spawnSync, ChildProcess, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, readFileSync, existsSync, mkdirSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as net from "node:net";
import * as http from "node:http";
import { proxyNodeBinPath } from "../infra/payload/artifacts";

const ROOT = join(__dirname, "..");
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const MEMORY = (process.env.BENCH_MEMORY ?? "1") !== "0";
const ONLY = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(",") : null;
const COOKIE = "BALANCEID=balancer.lb1";
const BODY = "x".repeat(92) + "\n"; // 93 bytes, as in shared/notes/balancer-anchors.md

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), "proxy-node-bench-"));
chmodSync(dir, 0o755);

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function have(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0 || existsSync(`/usr/sbin/${bin}`);
}

function ensurePackages(): void {
  const want: Array<[string, string]> = [
    ["wrk", "wrk"],
    ["nginx", "nginx-light"],
    ["haproxy", "haproxy"],
    ["apache2", "apache2"],
  ];
  const missing = want.filter(([bin]) => !have(bin)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  log(`installing ${missing.join(" ")} from Debian packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", ...missing], { stdio: "inherit", env });
  if (r.status !== 0) throw new Error("apt-get install failed");
  // Debian may start the packaged services; this bench uses its own instances only.
  for (const svc of ["nginx", "apache2", "haproxy"]) spawnSync("sh", ["-c", `command -v service >/dev/null && service ${svc} stop`], { stdio: "ignore" });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function start(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], env });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()).length > 4000 && (err = err.slice(-4000)));
  child.on("exit", (code, sig) => {
    if (!stopping) log(`${name} exited (${code ?? sig}): ${err.trim().slice(-800)}`);
  });
  children.push(child);
  return child;
}

async function waitFor(port: number, path = "/"): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: "127.0.0.1", port, path, headers: { Cookie: COOKIE }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
      req.setTimeout(1000, () => req.destroy());
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing answers 200 on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let stopping = false;
function stopAll(): void {
  stopping = true;
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
}

async function nginxMember(route: string, port: number): Promise<void> {
  const d = join(dir, `member-${route}`);
  mkdirSync(d, { recursive: true });
  const conf = `daemon off; master_process off; worker_processes 1; pid ${d}/nginx.pid; error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path ${d}; proxy_temp_path ${d}; fastcgi_temp_path ${d}; uwsgi_temp_path ${d}; scgi_temp_path ${d};
  server {
    listen 127.0.0.1:${port};
    location / { default_type text/plain; add_header Set-Cookie "BALANCEID=balancer.${route}; path=/"; return 200 "${BODY.trimEnd()}\n"; }
  }
}
`;
  writeFileSync(join(d, "nginx.conf"), conf);
  start(`member ${route}`, "nginx", ["-p", d, "-c", join(d, "nginx.conf")]);
  await waitFor(port);
}

async function startProxyNode(port: number, members: number[], managerPort: number, workers: number): Promise<ChildProcess> {
  const cfg = {
    mode: "serve",
    listen: { host: "127.0.0.1", port },
    publicUrl: `http://127.0.0.1:${port}`,
    manager: { host: "127.0.0.1", port: managerPort, allow: ["127.0.0.0/8"], token: "bench-token" },
    balancer: { name: "drupal", members: members.map((p, i) => ({ url: `http://127.0.0.1:${p}`, route: `lb${i + 1}` })) },
    log: { requests: false },
    workers,
  };
  const file = join(dir, `proxy-node-${workers}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  // Started as deployed: the package's built bin (its shebang passes node --max-semi-space-size=4).
  // workers > 1 uses proxy-node's own cluster mode (config "workers").
  const child = start(workers > 1 ? `proxy-node x${workers}` : "proxy-node", proxyNodeBinPath(), ["--config", file]);
  await waitFor(port);
  return child;
}

/** reuse false renders the members as the cluster program does (disablereuse=On: a connection per request). */
async function startApache(port: number, members: number[], reuse: boolean): Promise<ChildProcess> {
  const d = join(dir, reuse ? "apache" : "apache-noreuse");
  mkdirSync(d, { recursive: true });
  chmodSync(d, 0o777);
  const mods = ["mpm_event", "authn_core", "authz_core", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests", "slotmem_shm"];
  const conf = `ServerRoot /etc/apache2
ServerName 127.0.0.1
${mods.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`).join("\n")}
User www-data
Group www-data
PidFile ${d}/httpd.pid
DefaultRuntimeDir ${d}
Mutex file:${d} default
ErrorLog ${d}/error.log
LogLevel warn
Listen 127.0.0.1:${port}
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75
StartServers 2
ServerLimit 16
ThreadsPerChild 25
MaxRequestWorkers 400
<Proxy balancer://drupal>
${members.map((p, i) => `  BalancerMember http://127.0.0.1:${p} route=lb${i + 1}${reuse ? "" : " disablereuse=On"}`).join("\n")}
  ProxySet stickysession=BALANCEID lbmethod=byrequests
</Proxy>
<Location />
  Require all granted
</Location>
ProxyPass / balancer://drupal/
ProxyPassReverse / balancer://drupal/
`;
  writeFileSync(join(d, "httpd.conf"), conf);
  const child = start("apache", "apache2", ["-f", join(d, "httpd.conf"), "-DFOREGROUND"]);
  await waitFor(port);
  return child;
}

async function startHaproxy(port: number, members: number[]): Promise<ChildProcess> {
  const d = join(dir, "haproxy");
  mkdirSync(d, { recursive: true });
  const conf = `global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse safe
frontend fe
  bind 127.0.0.1:${port}
  default_backend drupal
backend drupal
  balance roundrobin
  cookie BALANCEID
${members.map((p, i) => `  server lb${i + 1} 127.0.0.1:${p} cookie balancer.lb${i + 1}`).join("\n")}
`;
  writeFileSync(join(d, "haproxy.cfg"), conf);
  const child = start("haproxy", "haproxy", ["-db", "-f", join(d, "haproxy.cfg")]);
  await waitFor(port);
  return child;
}

async function startNginxBalancer(port: number, members: number[]): Promise<ChildProcess> {
  const d = join(dir, "nginx-lb");
  mkdirSync(d, { recursive: true });
  const conf = `daemon off; worker_processes 2; pid ${d}/nginx.pid; error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path ${d}; proxy_temp_path ${d}; fastcgi_temp_path ${d}; uwsgi_temp_path ${d}; scgi_temp_path ${d};
  # Route = everything after the first '.', as mod_proxy_balancer takes it.
  map $cookie_BALANCEID $sticky { "~^[^.]*\\.(?<r>.+)$" $r; default all; }
${members.map((p, i) => `  upstream lb${i + 1} { server 127.0.0.1:${p}; keepalive 64; }`).join("\n")}
  upstream all { ${members.map((p) => `server 127.0.0.1:${p};`).join(" ")} keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://$sticky; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }
  }
}
`;
  writeFileSync(join(d, "nginx.conf"), conf);
  const child = start("nginx balancer", "nginx", ["-p", d, "-c", join(d, "nginx.conf")]);
  await waitFor(port);
  return child;
}

interface Result {
  rps: number;
  p99: number;
  requests: number;
  errors: number;
}

function parseMs(s: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(s);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

function wrk(port: number, seconds: number, connections = CONNECTIONS): Result {
  const out = execFileSync("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-H", `Cookie: ${COOKIE}`, `http://127.0.0.1:${port}/`], {
    encoding: "utf8",
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p99 = parseMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const errMatch = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = Number(errMatch?.[1] ?? 0) + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, p99, requests, errors };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime
}

/** The process and its direct children (cluster workers), for CPU accounting. */
function familyPids(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return [pid, ...(kids ? kids.split(/\s+/).map(Number) : [])];
  } catch {
    return [pid];
  }
}

function familyTicks(pids: number[]): number {
  let t = 0;
  for (const p of pids) {
    try {
      t += cpuTicks(p);
    } catch {
      // exited meanwhile
    }
  }
  return t;
}

function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

function served(managerPort: number): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port: managerPort, path: "/metrics", headers: { Authorization: "Bearer bench-token" }, agent: false }, (res) => {
        let s = "";
        res.on("data", (c) => (s += c));
        res.on("end", () => resolve(Number(/^proxy_node_requests_total (\d+)/m.exec(s)?.[1] ?? NaN)));
      })
      .on("error", reject);
  });
}

async function main(): Promise<void> {
  const t0 = Date.now();
  ensurePackages();
  log("building proxy-node (npm run build -w proxy-node)");
  execFileSync("npm", ["run", "--silent", "build", "-w", "proxy-node"], { cwd: ROOT, stdio: "inherit" });

  const [m1, m2, pn, pn2, ap, ap2, hp, ng, mgr, mgr2] = await Promise.all(Array.from({ length: 10 }, freePort));
  await nginxMember("lb1", m1);
  await nginxMember("lb2", m2);
  const targets: Array<{ name: string; port: number; pid?: () => number | undefined }> = [];
  targets.push({ name: "direct to one member", port: m1 });
  const pnChild = await startProxyNode(pn, [m1, m2], mgr, 1);
  targets.push({ name: "proxy-node (1 process)", port: pn, pid: () => pnChild.pid });
  if (!ONLY || ONLY.includes("cluster")) {
    const pn2Child = await startProxyNode(pn2, [m1, m2], mgr2, 2);
    targets.push({ name: "proxy-node (workers: 2, node:cluster)", port: pn2, pid: () => pn2Child.pid });
  }
  if (!ONLY || ONLY.includes("apache")) {
    const c = await startApache(ap, [m1, m2], true);
    targets.push({ name: "Apache 2.4 mod_proxy_balancer (event)", port: ap, pid: () => c.pid });
    // The cost of bounded waits on a lost member (issue 13): no pooled connections.
    const c2 = await startApache(ap2, [m1, m2], false);
    targets.push({ name: "Apache, disablereuse=On (as the cluster renders it)", port: ap2, pid: () => c2.pid });
  }
  if (!ONLY || ONLY.includes("haproxy")) {
    const c = await startHaproxy(hp, [m1, m2]);
    targets.push({ name: "HAProxy 2.6 (2 threads)", port: hp, pid: () => c.pid });
  }
  if (!ONLY || ONLY.includes("nginx")) {
    const c = await startNginxBalancer(ng, [m1, m2]);
    targets.push({ name: "nginx 1.22 (2 workers)", port: ng, pid: () => c.pid });
  }

  log("warm-up, 1 s each");
  for (const t of targets) wrk(t.port, 1);
  const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
  // CPU per request (user+sys of the process and its workers): steadier than
  // req/s when the host is shared, so compare changes by it.
  const cpu = new Map<string, number[]>();
  const load = [loadavg()];
  for (let r = 0; r < REPEATS; r++) {
    for (const t of targets) {
      const pid = t.pid?.();
      const pids = pid ? familyPids(pid) : [];
      const before = familyTicks(pids);
      const res = wrk(t.port, DURATION);
      if (pid) {
        if (!cpu.has(t.name)) cpu.set(t.name, []);
        cpu.get(t.name)!.push(((familyTicks(pids) - before) * 10_000) / res.requests); // ticks are 10 ms -> µs per request
      }
      results.get(t.name)!.push(res);
      log(`repeat ${r + 1}/${REPEATS} ${t.name}: ${res.rps.toFixed(0)} req/s, p99 ${res.p99.toFixed(2)} ms${res.errors ? `, ${res.errors} errors` : ""}`);
    }
  }
  const med = (name: string): { rps: number; p99: number; errors: number } => {
    const rs = results.get(name) ?? [];
    return { rps: median(rs.map((x) => x.rps)), p99: median(rs.map((x) => x.p99)), errors: rs.reduce((a, x) => a + x.errors, 0) };
  };
  const hap = targets.find((t) => t.name.startsWith("HAProxy"));
  const apa = targets.find((t) => t.name.startsWith("Apache"));
  const hRps = hap ? med(hap.name).rps : NaN;
  const aRps = apa ? med(apa.name).rps : NaN;
  const lines = [
    `wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${REPEATS} interleaved repeats, medians; Cookie: ${COOKIE}; two single-worker nginx members; ${new Date().toISOString()}`,
    "",
    "| target | req/s | p99 ms | vs HAProxy | vs Apache | balancer CPU µs/request | errors |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const t of targets) {
    const m = med(t.name);
    const c = cpu.get(t.name);
    lines.push(
      `| ${t.name} | ${m.rps.toFixed(0)} | ${m.p99.toFixed(2)} | ${(m.rps / hRps).toFixed(2)} | ${(m.rps / aRps).toFixed(2)} | ${c ? median(c).toFixed(0) : "-"} | ${m.errors} |`,
    );
  }
  load.push(loadavg());
  lines.push("");
  lines.push("CPU: user+sys of the balancer process and its children (workers) during each run, per request served, median.");
  lines.push(`load average before/after the runs: ${load.join(" / ")} (other work on the host shows here)`);

  if (MEMORY) {
    // A fresh process, so "after 100k" means 100k requests since start, not
    // 100k plus everything the runs above sent.
    log("memory: a fresh proxy-node, driven to 100k and then 1M requests");
    const [mp, mm] = await Promise.all([freePort(), freePort()]);
    const fresh = await startProxyNode(mp, [m1, m2], mm, 1);
    const pid = fresh.pid as number;
    let n = await served(mm);
    let rate = 30_000; // a guess on the high side; measured after the first run
    const drive = async (target: number): Promise<void> => {
      while (n < target) {
        const seconds = Math.max(1, Math.min(10, Math.floor((target - n) / rate)));
        const r = wrk(mp, seconds);
        rate = Math.max(1000, r.rps);
        n = await served(mm);
      }
    };
    await drive(100_000);
    const rss100k = rssKb(pid);
    const at100k = n;
    await drive(1_000_000);
    const rss1m = rssKb(pid);
    lines.push(
      `proxy-node RSS: ${(rss100k / 1024).toFixed(1)} MiB after ${at100k} requests, ${(rss1m / 1024).toFixed(1)} MiB after ${n} requests (ratio ${(rss1m / rss100k).toFixed(3)})`,
    );
  }
  lines.push(`bench took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.stdout.write(lines.join("\n") + "\n");
}

process.on("SIGINT", () => {
  stopAll();
  process.exit(130);
});

main()
  .catch((e: Error) => {
    log(`failed: ${e.stack ?? e.message}`);
    process.exitCode = 1;
  })
  .finally(() => {
    stopAll();
    setTimeout(() => {
      for (const c of children)
        if (c.exitCode === null && c.signalCode === null && c.pid) {
          try {
            process.kill(c.pid, "SIGKILL");
          } catch {
            // gone
          }
        }
      rmSync(dir, { recursive: true, force: true });
      process.exit();
    }, 1500);
  });
