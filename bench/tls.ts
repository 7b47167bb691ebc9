// Benchmark (not a test): HTTPS at the balancer on loopback, the same
// certificate (ECDSA P-256) and the same protocols and suites (Mozilla
// intermediate) everywhere, two single-worker nginx members behind, the sticky
// cookie on every request. Two figures per balancer, with wrk:
//   - new TLS connections per second: every request on a new connection
//     (Connection: close), so each one pays a full handshake (wrk resumes no session);
//   - keep-alive requests per second over TLS.
// Interleaved repeats, medians, ratios to HAProxy. Every server is started here
// with its own config in a temp dir on 127.0.0.1 and stopped at the end.
//
//   npx ts-node bench/tls.ts          (root: npm run bench)
//   BENCH_DURATION=5 BENCH_REPEATS=3 BENCH_CONNECTIONS=64 to adjust
import { ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { INTERMEDIATE_CIPHERS } from "../infra/config/tls";
import { proxyNodeBinPath } from "../infra/payload/artifacts";
import { selfSigned, subjectAltName } from "../scripts/openssl";

const ROOT = join(__dirname, "..");
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const COOKIE = "BALANCEID=balancer.lb1";
const CIPHERS = INTERMEDIATE_CIPHERS.join(":");

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), "tls-bench-"));
chmodSync(dir, 0o755);
let stopping = false;

function log(msg: string): void {
  process.stderr.write(`[bench tls] ${msg}\n`);
}

function have(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0 || existsSync(`/usr/sbin/${bin}`);
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function start(name: string, cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()).length > 4000 && (err = err.slice(-4000)));
  child.on("exit", (code, sig) => {
    if (!stopping) log(`${name} exited (${code ?? sig}): ${err.trim().slice(-800)}`);
  });
  children.push(child);
  return child;
}

/** Waits for 200 on `/`; HTTPS trusting the bench's own certificate. */
async function waitFor(port: number, secure: boolean, ca: string): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const get = secure ? https.get : http.get;
      const req = get({ host: "127.0.0.1", port, path: "/", headers: { Cookie: COOKIE }, agent: false, ca, servername: "localhost" }, (res) => {
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

function certificate(): { cert: string; key: string; pem: string; ca: string } {
  selfSigned(dir, {
    key: "key.pem",
    cert: "cert.pem",
    days: 2,
    subject: "/CN=localhost",
    extensions: [`subjectAltName=${subjectAltName(["localhost", "127.0.0.1"])}`],
  });
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  // HAProxy takes the certificate and its key in one file.
  const pem = join(dir, "haproxy.pem");
  execFileSync("sh", ["-c", `cat cert.pem key.pem > haproxy.pem`], { cwd: dir });
  return { cert, key, pem, ca: readFileSync(cert, "utf8") };
}

async function nginxMember(route: string, port: number, ca: string): Promise<void> {
  const d = join(dir, `member-${route}`);
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, "nginx.conf"),
    `daemon off; master_process off; worker_processes 1; pid ${d}/nginx.pid; error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path ${d}; proxy_temp_path ${d}; fastcgi_temp_path ${d}; uwsgi_temp_path ${d}; scgi_temp_path ${d};
  server { listen 127.0.0.1:${port}; location / { default_type text/plain; add_header Set-Cookie "BALANCEID=balancer.${route}; path=/"; return 200 "${"x".repeat(92)}\\n"; } }
}
`,
  );
  start(`member ${route}`, "nginx", ["-p", d, "-c", join(d, "nginx.conf")]);
  await waitFor(port, false, ca);
}

interface Tls {
  cert: string;
  key: string;
  pem: string;
  ca: string;
}

async function proxyNode(port: number, members: number[], t: Tls, workers: number): Promise<ChildProcess> {
  const plain = await freePort();
  const file = join(dir, `proxy-node-${workers}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      mode: "serve",
      listen: { host: "127.0.0.1", port: plain },
      tls: { host: "127.0.0.1", port, cert: t.cert, key: t.key, ciphers: CIPHERS, redirect: false },
      balancer: { name: "drupal", members: members.map((p, i) => ({ url: `http://127.0.0.1:${p}`, route: `lb${i + 1}` })) },
      log: { requests: false },
      workers,
    }),
  );
  const child = start(`proxy-node x${workers}`, proxyNodeBinPath(), ["--config", file]);
  await waitFor(port, true, t.ca);
  return child;
}

async function apache(port: number, members: number[], t: Tls): Promise<ChildProcess> {
  const d = join(dir, "apache");
  mkdirSync(d, { recursive: true });
  chmodSync(d, 0o777);
  const mods = ["mpm_event", "authn_core", "authz_core", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests", "slotmem_shm", "socache_shmcb", "ssl"];
  writeFileSync(
    join(d, "httpd.conf"),
    `ServerRoot /etc/apache2
ServerName localhost
${mods.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`).join("\n")}
User www-data
Group www-data
PidFile ${d}/httpd.pid
DefaultRuntimeDir ${d}
Mutex file:${d} default
ErrorLog ${d}/error.log
LogLevel warn
Listen 127.0.0.1:${port} https
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75
StartServers 2
ServerLimit 16
ThreadsPerChild 25
MaxRequestWorkers 400
SSLSessionCache shmcb:${d}/ssl_scache(512000)
<VirtualHost 127.0.0.1:${port}>
  SSLEngine on
  SSLCertificateFile ${t.cert}
  SSLCertificateKeyFile ${t.key}
  SSLProtocol -all +TLSv1.2 +TLSv1.3
  SSLCipherSuite ${CIPHERS}
  SSLHonorCipherOrder off
  SSLSessionTickets off
  <Proxy balancer://drupal>
${members.map((p, i) => `    BalancerMember http://127.0.0.1:${p} route=lb${i + 1}`).join("\n")}
    ProxySet stickysession=BALANCEID lbmethod=byrequests
  </Proxy>
  <Location />
    Require all granted
  </Location>
  ProxyPass / balancer://drupal/
</VirtualHost>
`,
  );
  const child = start("apache", "apache2", ["-f", join(d, "httpd.conf"), "-DFOREGROUND"]);
  await waitFor(port, true, t.ca);
  return child;
}

async function haproxy(port: number, members: number[], t: Tls): Promise<ChildProcess> {
  const d = join(dir, "haproxy");
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, "haproxy.cfg"),
    `global
  nbthread 2
  maxconn 8000
  ssl-default-bind-ciphers ${CIPHERS}
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
  mode http
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse safe
frontend fe
  bind 127.0.0.1:${port} ssl crt ${t.pem}
  default_backend drupal
backend drupal
  balance roundrobin
  cookie BALANCEID
${members.map((p, i) => `  server lb${i + 1} 127.0.0.1:${p} cookie balancer.lb${i + 1}`).join("\n")}
`,
  );
  const child = start("haproxy", "haproxy", ["-db", "-f", join(d, "haproxy.cfg")]);
  await waitFor(port, true, t.ca);
  return child;
}

async function nginx(port: number, members: number[], t: Tls): Promise<ChildProcess> {
  const d = join(dir, "nginx-lb");
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, "nginx.conf"),
    `daemon off; worker_processes 2; pid ${d}/nginx.pid; error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path ${d}; proxy_temp_path ${d}; fastcgi_temp_path ${d}; uwsgi_temp_path ${d}; scgi_temp_path ${d};
  map $cookie_BALANCEID $sticky { "~^[^.]*\\.(?<r>.+)$" $r; default all; }
${members.map((p, i) => `  upstream lb${i + 1} { server 127.0.0.1:${p}; keepalive 64; }`).join("\n")}
  upstream all { ${members.map((p) => `server 127.0.0.1:${p};`).join(" ")} keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${t.cert}; ssl_certificate_key ${t.key};
    ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers ${CIPHERS}; ssl_prefer_server_ciphers off; ssl_session_tickets off;
    location / { proxy_pass http://$sticky; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }
  }
}
`,
  );
  const child = start("nginx balancer", "nginx", ["-p", d, "-c", join(d, "nginx.conf")]);
  await waitFor(port, true, t.ca);
  return child;
}

interface Result {
  rps: number;
  errors: number;
}

/** wrk against the HTTPS port; `close` makes every request a new connection and a full handshake. */
function wrk(port: number, seconds: number, close: boolean): Result {
  const headers = ["-H", `Cookie: ${COOKIE}`, ...(close ? ["-H", "Connection: close"] : [])];
  const out = execFileSync("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, ...headers, `https://127.0.0.1:${port}/`], { encoding: "utf8" });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  // With Connection: close, wrk counts the server's close of each connection as a read error: not a failure.
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? Number(sock[1]) + (close ? 0 : Number(sock[2])) + Number(sock[3]) + Number(sock[4]) : 0);
  return { rps, errors };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export async function main(): Promise<string> {
  const t0 = Date.now();
  for (const bin of ["wrk", "nginx", "haproxy", "apache2"])
    if (!have(bin)) throw new Error(`${bin} is missing: npm run bench installs it (bench/proxy-node.ts)`);
  if (!existsSync(proxyNodeBinPath())) execFileSync("npm", ["run", "--silent", "build", "-w", "proxy-node"], { cwd: ROOT, stdio: "inherit" });
  const t = certificate();
  const [m1, m2, pn, pn2, ap, hp, ng] = await Promise.all(Array.from({ length: 7 }, freePort));
  await nginxMember("lb1", m1, t.ca);
  await nginxMember("lb2", m2, t.ca);
  const targets = [
    { name: "proxy-node (1 process)", port: pn, up: () => proxyNode(pn, [m1, m2], t, 1) },
    { name: "proxy-node (workers: 2)", port: pn2, up: () => proxyNode(pn2, [m1, m2], t, 2) },
    { name: "Apache 2.4 mod_ssl (event)", port: ap, up: () => apache(ap, [m1, m2], t) },
    { name: "HAProxy 2.6 (2 threads)", port: hp, up: () => haproxy(hp, [m1, m2], t) },
    { name: "nginx 1.22 (2 workers)", port: ng, up: () => nginx(ng, [m1, m2], t) },
  ];
  for (const x of targets) await x.up();
  log("warm-up, 1 s each");
  for (const x of targets) wrk(x.port, 1, false);
  const runs = new Map<string, { handshakes: Result[]; keepAlive: Result[] }>(targets.map((x) => [x.name, { handshakes: [], keepAlive: [] }]));
  for (let r = 0; r < REPEATS; r++) {
    for (const x of targets) {
      const h = wrk(x.port, DURATION, true);
      const k = wrk(x.port, DURATION, false);
      runs.get(x.name)!.handshakes.push(h);
      runs.get(x.name)!.keepAlive.push(k);
      log(`repeat ${r + 1}/${REPEATS} ${x.name}: ${h.rps.toFixed(0)} new TLS connections/s, ${k.rps.toFixed(0)} keep-alive req/s`);
    }
  }
  const med = (name: string, kind: "handshakes" | "keepAlive"): number => median(runs.get(name)![kind].map((x) => x.rps));
  const errs = (name: string): number => [...runs.get(name)!.handshakes, ...runs.get(name)!.keepAlive].reduce((a, x) => a + x.errors, 0);
  const hap = "HAProxy 2.6 (2 threads)";
  const lines = [
    `wrk -t1 -c${CONNECTIONS} -d${DURATION}s over TLS (ECDSA P-256, Mozilla intermediate), ${REPEATS} interleaved repeats, medians; Cookie: ${COOKIE}; two single-worker nginx members; ${new Date().toISOString()}`,
    "",
    "| target | new TLS connections/s | vs HAProxy | keep-alive req/s over TLS | vs HAProxy | errors |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const x of targets) {
    const h = med(x.name, "handshakes");
    const k = med(x.name, "keepAlive");
    lines.push(
      `| ${x.name} | ${h.toFixed(0)} | ${(h / med(hap, "handshakes")).toFixed(2)} | ${k.toFixed(0)} | ${(k / med(hap, "keepAlive")).toFixed(2)} | ${errs(x.name)} |`,
    );
  }
  lines.push(`bench took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return lines.join("\n") + "\n";
}

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

if (require.main === module) {
  process.on("SIGINT", () => {
    stopAll();
    process.exit(130);
  });
  main()
    .then((out) => process.stdout.write(out))
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
}
