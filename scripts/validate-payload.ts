/**
 * The validator container: Debian bookworm with the packages our hosts get, so
 * Apache, PHP, the shell and MariaDB check the rendered files with their own parsers.
 * Used by the template suites and, before `up` and `preview`, by scripts/stack.ts:
 * a config Apache would refuse never reaches a host.
 */
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClusterModel } from "../infra/model/types";
import { apacheBalancerModules, PROXY_NODE_BIN } from "../infra/payload/balancer";
import { HostPayload, PayloadFile } from "../infra/payload/types";
import { PROVISION_PATH, provisionScript } from "../infra/targets/docker/provision";

export const VALIDATOR_IMAGE = "drupal-cluster/validator:bookworm";
export const BASE_IMAGE = "drupal-cluster/debian:bookworm";
export const RECIPE_DIR = path.resolve(__dirname, "..", "test", "validator-image");
const RECIPE_LABEL = "drupal-cluster.recipe";

function docker(args: string[], opts: { input?: Buffer; timeoutMs?: number } = {}): { status: number | null; out: string } {
  const r = spawnSync("docker", args, {
    input: opts.input,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
    encoding: "buffer",
  });
  const out = `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}${r.error ? `\n${r.error.message}` : ""}`;
  return { status: r.status, out };
}

/** Why the docker engine cannot be used here, or undefined when it can. */
export function dockerProblem(): string | undefined {
  const info = docker(["info", "--format", "{{.ServerVersion}}"], { timeoutMs: 30_000 });
  return info.status === 0 ? undefined : `\`docker info\` failed: ${info.out.trim().split("\n")[0]}`;
}

/** Fails loudly (never skips) when the docker engine is not there. */
export function requireDocker(): void {
  const problem = dockerProblem();
  if (problem) {
    throw new Error(
      `the template validation suite needs the docker engine, and ${problem}\n` +
        "Run scripts/bootstrap (it starts dockerd and builds drupal-cluster/debian:bookworm), then run the tests again.",
    );
  }
}

export function recipeHash(): string {
  const h = crypto.createHash("sha256");
  for (const f of fs.readdirSync(RECIPE_DIR).sort())
    h.update(f)
      .update("\0")
      .update(fs.readFileSync(path.join(RECIPE_DIR, f)));
  return h.digest("hex").slice(0, 16);
}

export function validatorImageReady(): boolean {
  const have = docker(["image", "inspect", VALIDATOR_IMAGE, "--format", `{{ index .Config.Labels "${RECIPE_LABEL}" }}`]);
  return have.status === 0 && have.out.trim() === recipeHash();
}

/** Builds the validator image unless an image from the same recipe is already there. */
export function ensureValidatorImage(log: (s: string) => void = () => undefined): void {
  if (validatorImageReady()) return;
  const want = recipeHash();
  if (docker(["image", "inspect", BASE_IMAGE]).status !== 0) {
    throw new Error(`the base image ${BASE_IMAGE} is missing: run scripts/bootstrap (it builds it with debootstrap)`);
  }
  log(`building ${VALIDATOR_IMAGE} (recipe ${want}); the first build takes a few minutes`);
  const b = docker(["build", "--label", `${RECIPE_LABEL}=${want}`, "-t", VALIDATOR_IMAGE, RECIPE_DIR], { timeoutMs: 30 * 60_000 });
  if (b.status !== 0) throw new Error(`docker build of ${VALIDATOR_IMAGE} failed:\n${b.out.slice(-6000)}`);
}

export interface ValidationRun {
  status: number | null;
  output: string;
}

/** Shell quoting for one argument of the check scripts (always quoted: they are ours). */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Writes files under their absolute paths below `root`, with their modes. */
function layOut(root: string, files: PayloadFile[]): void {
  for (const f of files) {
    const target = path.join(root, f.path);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, f.content, { mode: parseInt(f.mode, 8) });
    fs.chmodSync(target, parseInt(f.mode, 8));
  }
}

/** Runs `command` in a fresh validator container (no network) over the tree in `dir`, sent as a tar stream. */
function runOverTree(dir: string, command: string, timeoutMs: number): ValidationRun {
  const tar = spawnSync("tar", ["-C", dir, "--owner=0", "--group=0", "-cf", "-", "."], { maxBuffer: 512 * 1024 * 1024 });
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr?.toString()}`);
  const r = docker(
    ["run", "--rm", "-i", "--network", "none", VALIDATOR_IMAGE, "bash", "-c", `tar --no-same-owner -xf - -C / --no-overwrite-dir && ${command}`],
    { input: tar.stdout, timeoutMs },
  );
  return { status: r.status, output: r.out };
}

/**
 * Lays the files out under their absolute paths over the package defaults in one
 * fresh container (no network), then runs `script` there. The tree travels as a
 * tar stream on stdin, so it works wherever the docker daemon runs.
 */
export function validateInContainer(files: PayloadFile[], script: string): ValidationRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-validate-"));
  try {
    layOut(dir, files);
    layOut(dir, [{ path: "/tmp/drupal-cluster-check.sh", content: script, mode: "0644", owner: "root:root", secret: false }]);
    return runOverTree(dir, "exec bash /tmp/drupal-cluster-check.sh", 5 * 60_000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The files of a host that the validators read: proxy-node's shipped bin is checked by its own build. */
export function checkedFiles(m: ClusterModel, p: HostPayload): PayloadFile[] {
  const files = p.files.filter((f) => f.path !== PROXY_NODE_BIN);
  // The docker target's entrypoint, from the same function the target uses.
  if (m.target === "docker") files.push({ path: PROVISION_PATH, content: provisionScript(m, p), mode: "0755", owner: "root:root", secret: false });
  return files;
}

export interface CheckOptions {
  /** MariaDB is already running (a batch starts it once): run the SQL against it, list no grants. */
  sharedDatabase?: boolean;
}

/**
 * The checks for one host's files: `apache2ctl -t` over the whole Apache tree with
 * our modules, sites and confs enabled; `php -l`; MariaDB's own option parsing and
 * the bootstrap SQL run twice against a real server (it must converge); `sh -n` or
 * `bash -n` on every script and on every provisioning step; JSON.
 */
export function checkScript(m: ClusterModel, p: HostPayload, files: PayloadFile[], opts: CheckOptions = {}): string {
  const lines = ["exec 2>&1", "fail=0", `check() { echo "### $1"; shift; if "$@"; then echo "### ok"; else echo "### FAILED (exit $?)"; fail=1; fi; }`];
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
  // The ssh target runs each step and service command with `bash -ec`: parse them the same way.
  const commands = [
    ...[...p.prepare, ...p.configure, ...p.afterStart, ...(p.afterBalancers ?? [])].flatMap((s) => [
      { what: `step ${s.name}`, run: s.run },
      ...(s.check ? [{ what: `check of step ${s.name}`, run: s.check }] : []),
    ]),
    ...p.services.flatMap((s) => [s.start, s.reload, s.stop].map((run) => ({ what: `service ${s.name}`, run }))),
  ];
  for (const c of commands) lines.push(`check ${q(`bash -n: ${c.what}`)} bash -n -c ${q(c.run)}`);
  if (paths.some((x) => x.endsWith(".cnf"))) {
    // Parses every option file MariaDB reads (ours included) and prints the values in effect.
    lines.push(`check "mariadbd --help --verbose" sh -c 'mariadbd --user=mysql --help --verbose > /tmp/mariadb-options.txt'`);
    lines.push(`grep -E '^(bind-address|port|character-set-server|transaction-isolation) ' /tmp/mariadb-options.txt | sed 's/^/option: /'`);
  }
  for (const sql of paths.filter((x) => x.endsWith(".sql"))) {
    if (!opts.sharedDatabase) lines.push(START_MARIADB);
    lines.push(
      `check ${q(`mariadb < ${sql}`)} sh -c ${q(`mariadb --protocol=socket < ${sql}`)}`,
      `check ${q(`mariadb < ${sql} (again: it converges)`)} sh -c ${q(`mariadb --protocol=socket < ${sql}`)}`,
    );
    if (!opts.sharedDatabase) {
      lines.push(
        `mariadb --protocol=socket -N -e "SELECT CONCAT('grant: ', user, '@', host) FROM mysql.user WHERE user <> 'root' AND user <> 'mysql' AND user <> 'mariadb.sys' ORDER BY host"`,
        "mariadb-admin --protocol=socket shutdown >/dev/null 2>&1 || true",
      );
    }
  }
  lines.push('echo "### result: $fail"', "exit $fail");
  return lines.join("\n") + "\n";
}

const START_MARIADB = [
  "mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld",
  // Our cnf binds the cluster address, which this container lacks: socket only.
  "mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock >/tmp/mariadbd.log 2>&1 &",
  "for i in $(seq 1 60); do mariadb-admin --protocol=socket ping >/dev/null 2>&1 && break; sleep 0.5; done",
].join("\n");

/** One host's files to check, with the model and payload they came from. */
export interface TreeToCheck {
  label: string;
  model: ClusterModel;
  payload: HostPayload;
  files: PayloadFile[];
}

export interface TreeResult {
  label: string;
  ok: boolean;
  output: string;
}

/**
 * Many hosts' trees in ONE container, one after the other: each gets the package
 * defaults of /etc/apache2 and /etc/mysql back before its files land, so the trees
 * cannot see each other's config. MariaDB runs once for all the SQL.
 */
export function validateTrees(trees: TreeToCheck[]): TreeResult[] {
  if (trees.length === 0) return [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-validate-"));
  try {
    const driver = [
      "exec 2>&1",
      "cp -a /etc/apache2 /tmp/pristine-apache2 && cp -a /etc/mysql /tmp/pristine-mysql",
      // The server reads only the package's options: each tree's own cnf is checked by `mariadbd --help`.
      trees.some((t) => t.files.some((f) => f.path.endsWith(".sql"))) ? START_MARIADB : "",
    ];
    trees.forEach((t, i) => {
      const root = `/tmp/drupal-cluster-trees/${i}`;
      layOut(path.join(dir, root), t.files);
      const script = checkScript(t.model, t.payload, t.files, { sharedDatabase: true });
      layOut(dir, [{ path: `${root}.sh`, content: script, mode: "0644", owner: "root:root", secret: false }]);
      driver.push(
        `echo "##### tree ${i}"`,
        "rm -rf /etc/apache2 /etc/mysql && cp -a /tmp/pristine-apache2 /etc/apache2 && cp -a /tmp/pristine-mysql /etc/mysql",
        `cp -a ${root}/. / && bash ${root}.sh; echo "##### tree ${i} status $?"`,
      );
    });
    layOut(dir, [{ path: "/tmp/drupal-cluster-batch.sh", content: driver.join("\n") + "\n", mode: "0644", owner: "root:root", secret: false }]);
    const run = runOverTree(dir, "exec bash /tmp/drupal-cluster-batch.sh", 15 * 60_000);
    return trees.map((t, i) => {
      const start = run.output.indexOf(`##### tree ${i}\n`);
      const endMark = new RegExp(`##### tree ${i} status (\\d+)`).exec(run.output);
      const output = start >= 0 ? run.output.slice(start, endMark ? endMark.index + endMark[0].length : undefined) : run.output.slice(-4000);
      return { label: t.label, ok: endMark?.[1] === "0", output };
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface PayloadCheck {
  ran: boolean;
  ok: boolean;
  /** One line for the operator: what was validated, or why it could not run. */
  summary: string;
  failures: TreeResult[];
}

/**
 * The whole cluster's rendered tree through the real validators, before anything is
 * created. Reports "could not run" (never passes silently) when docker or the
 * validator image is not available.
 */
export function checkPayloads(model: ClusterModel, payloads: HostPayload[], log: (s: string) => void = () => undefined): PayloadCheck {
  const problem = dockerProblem();
  if (problem) return { ran: false, ok: true, summary: `payload check could not run: ${problem}`, failures: [] };
  try {
    ensureValidatorImage(log);
  } catch (e) {
    return { ran: false, ok: true, summary: `payload check could not run: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`, failures: [] };
  }
  const t0 = Date.now();
  const trees = payloads.map((p) => ({ label: p.host.name, model, payload: p, files: checkedFiles(model, p) }));
  const results = validateTrees(trees);
  const failures = results.filter((r) => !r.ok);
  const files = trees.reduce((n, t) => n + t.files.length, 0);
  const commands = payloads.reduce((n, p) => n + p.prepare.length + p.configure.length + p.afterStart.length + p.services.length * 3, 0);
  const took = ((Date.now() - t0) / 1000).toFixed(1);
  const summary = failures.length
    ? `payload check FAILED on ${failures.map((f) => f.label).join(", ")} (${files} files, ${took} s)`
    : `validated ${files} files and ${commands} commands of ${payloads.length} hosts with apache2ctl/php/sh/mariadb in ${took} s`;
  return { ran: true, ok: failures.length === 0, summary, failures };
}
