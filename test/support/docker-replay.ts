/**
 * The docker target without the docker provider plugin: the cluster program runs
 * for a docker-target stack under Pulumi's mocks, every docker resource it
 * declares is recorded with its inputs, and exactly those resources are then
 * created with the docker CLI. No docker logic is repeated here: names, images,
 * commands, addresses, ports, uploads, volumes and labels all come from the
 * program's recorded inputs. An input the replay does not know is an error, so
 * a new setting in the program cannot be dropped silently.
 */
import { spawnSync } from "node:child_process";
import { readStackFile } from "../../infra/config/stack-file";
import { readProxyNodeArtifact } from "../../infra/payload/artifacts";
import { removeByLabel } from "../../scripts/local-hosts";
import { Registration, runWithMocks } from "./pulumi-mocks";

export const NETWORK = "docker:index/network:Network";
export const VOLUME = "docker:index/volume:Volume";
export const CONTAINER = "docker:index/container:Container";
/** Touched by the container entrypoint (templates/docker/provision.sh.hbs) when the host is provisioned. */
export const READY_FILE = "/run/drupal-cluster-ready";

type ClusterOutputs = ReturnType<typeof import("../../infra/program").clusterProgram>;

export interface Label {
  label: string;
  value: string;
}

export interface RecordedNetwork {
  urn: string;
  name: string;
  ipamConfigs: Array<{ subnet?: string; gateway?: string; ipRange?: string }>;
  labels: Label[];
}

export interface RecordedVolume {
  urn: string;
  name: string;
  labels: Label[];
}

export interface Upload {
  file: string;
  content?: string;
  contentBase64?: string;
  permissions?: string;
  executable?: boolean;
}

export interface RecordedContainer {
  urn: string;
  name: string;
  hostname: string;
  image: string;
  command: string[];
  networksAdvanced: Array<{ name: string; ipv4Address?: string; aliases?: string[] }>;
  ports: Array<{ internal: number; external?: number; ip?: string; protocol?: string }>;
  uploads: Upload[];
  volumes: Array<{ volumeName?: string; containerPath: string; readOnly?: boolean }>;
  labels: Label[];
  restart?: string;
  mustRun?: boolean;
  healthcheck?: { tests?: string[]; interval?: string; timeout?: string; startPeriod?: string; retries?: number; startInterval?: string };
  /** Wait for the healthcheck to report healthy after creation, up to waitTimeout seconds (provider default 60). */
  wait?: boolean;
  waitTimeout?: number;
  /** URNs the resource waits for (the program's dependsOn and input dependencies). */
  dependencies: string[];
}

export interface RecordedCluster {
  stack: string;
  outputs: ClusterOutputs;
  networks: RecordedNetwork[];
  volumes: RecordedVolume[];
  containers: RecordedContainer[];
}

/** Secrets for the mock run: test values, and the docker target needs no SSH key. */
export const REPLAY_SECRETS = {
  dbPassword: "replay-DB-password-4e7a91c2",
  hashSalt: "replay-hash-salt-0b6d33f8",
  managerToken: "replay-manager-token-7c2e58a1",
  cronKey: "replay-cron-key-2f9b6d07",
};

const KNOWN: Record<string, string[]> = {
  [NETWORK]: ["name", "ipamConfigs", "labels"],
  [VOLUME]: ["name", "labels"],
  [CONTAINER]: [
    "name",
    "hostname",
    "image",
    "command",
    "networksAdvanced",
    "ports",
    "uploads",
    "volumes",
    "labels",
    "restart",
    "mustRun",
    "healthcheck",
    "wait",
    "waitTimeout",
  ],
};

function checkKnown(r: Registration): void {
  const unknown = Object.keys(r.inputs).filter((k) => !KNOWN[r.type].includes(k));
  if (unknown.length) {
    throw new Error(`${r.type} ${r.name}: the replay does not know the input(s) ${unknown.join(", ")}; teach test/support/docker-replay.ts to apply them`);
  }
}

/**
 * Runs the program for `stack` (its stack file, test secrets, the real proxy-node
 * build) under mocks and returns the docker resources it declares, with their
 * inputs as the engine would receive them (secrets unwrapped: they are test values).
 */
export async function recordDockerResources(stack: string): Promise<RecordedCluster> {
  // The program must be imported after the first setMocks (see test/unit/program.test.ts).
  await runWithMocks("import", {}, {}, () => undefined);
  const { clusterProgram } = await import("../../infra/program");
  const artifact = readProxyNodeArtifact();
  const run = await runWithMocks(stack, readStackFile(stack), REPLAY_SECRETS, () => clusterProgram(artifact));
  if (run.error) throw run.error;
  if (!run.result) throw new Error(`the program returned no outputs for stack ${stack}`);
  const docker = run.registrations.filter((r) => r.type.startsWith("docker:"));
  for (const r of docker) {
    if (!(r.type in KNOWN)) throw new Error(`the program declares ${r.type} ${r.name}, which the replay cannot create`);
    checkKnown(r);
  }
  const of = (type: string): Registration[] => docker.filter((r) => r.type === type);
  const containers = of(CONTAINER).map((r) => {
    const i = r.inputs;
    const uploads = (i.uploads ?? []) as Array<Upload & { source?: string }>;
    for (const u of uploads) {
      if (u.source !== undefined) throw new Error(`${i.name}: upload ${u.file} from a source file is not replayed`);
      if (typeof u.content !== "string" && typeof u.contentBase64 !== "string") {
        throw new Error(`${i.name}: upload ${u.file} has no known content (${JSON.stringify(u).slice(0, 200)})`);
      }
    }
    return {
      urn: r.urn,
      name: i.name,
      hostname: i.hostname,
      image: i.image,
      command: i.command ?? [],
      networksAdvanced: i.networksAdvanced ?? [],
      ports: i.ports ?? [],
      uploads,
      volumes: i.volumes ?? [],
      labels: i.labels ?? [],
      restart: i.restart,
      mustRun: i.mustRun,
      healthcheck: i.healthcheck,
      wait: i.wait,
      waitTimeout: i.waitTimeout,
      dependencies: r.dependencies,
    } as RecordedContainer;
  });
  return {
    stack,
    outputs: run.result,
    networks: of(NETWORK).map((r) => ({ urn: r.urn, name: r.inputs.name, ipamConfigs: r.inputs.ipamConfigs ?? [], labels: r.inputs.labels ?? [] })),
    volumes: of(VOLUME).map((r) => ({ urn: r.urn, name: r.inputs.name, labels: r.inputs.labels ?? [] })),
    containers,
  };
}

/**
 * Containers in tiers: each tier's containers wait only for earlier tiers (the
 * program's dependsOn between containers), as the engine would order them.
 */
export function containerTiers(containers: RecordedContainer[]): RecordedContainer[][] {
  const urns = new Set(containers.map((c) => c.urn));
  const done = new Set<string>();
  const tiers: RecordedContainer[][] = [];
  let left = [...containers];
  while (left.length) {
    const tier = left.filter((c) => c.dependencies.every((d) => !urns.has(d) || done.has(d)));
    if (!tier.length) throw new Error(`dependency cycle among containers: ${left.map((c) => c.name).join(", ")}`);
    tiers.push(tier);
    for (const c of tier) done.add(c.urn);
    left = left.filter((c) => !tier.includes(c));
  }
  return tiers;
}

// ---------------------------------------------------------------- docker CLI

export function docker(args: string[], input?: Buffer | string): string {
  const r = spawnSync("docker", args, { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`docker ${args.slice(0, 3).join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`docker ${args.slice(0, 4).join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/** Fails loudly when there is no docker engine to talk to. */
export function requireDockerEngine(): void {
  const r = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || r.stdout).trim();
    throw new Error(`the docker engine is not reachable (docker info: ${why}): run scripts/bootstrap`);
  }
}

const labelArgs = (labels: Label[]): string[] => labels.flatMap((l) => ["--label", `${l.label}=${l.value}`]);

export function createNetwork(n: RecordedNetwork): void {
  const ipam = n.ipamConfigs.flatMap((c) => [
    ...(c.subnet ? ["--subnet", c.subnet] : []),
    ...(c.gateway ? ["--gateway", c.gateway] : []),
    ...(c.ipRange ? ["--ip-range", c.ipRange] : []),
  ]);
  docker(["network", "create", ...ipam, ...labelArgs(n.labels), n.name]);
}

export function createVolume(v: RecordedVolume): void {
  docker(["volume", "create", ...labelArgs(v.labels), v.name]);
}

/** `docker create` arguments for one recorded container (it joins its first network here, others after). */
export function createArgs(c: RecordedContainer): string[] {
  const args = ["create", "--name", c.name, "--hostname", c.hostname, ...labelArgs(c.labels)];
  const [first] = c.networksAdvanced;
  if (first) {
    args.push("--network", first.name);
    if (first.ipv4Address) args.push("--ip", first.ipv4Address);
    for (const a of first.aliases ?? []) args.push("--network-alias", a);
  }
  for (const p of c.ports) {
    const host = p.ip ? `${p.ip}:${p.external ?? ""}:` : p.external !== undefined ? `${p.external}:` : "";
    args.push("-p", `${host}${p.internal}${p.protocol && p.protocol !== "tcp" ? `/${p.protocol}` : ""}`);
  }
  for (const v of c.volumes) {
    if (!v.volumeName) throw new Error(`${c.name}: a volume without volumeName (${JSON.stringify(v)}) is not replayed`);
    args.push("-v", `${v.volumeName}:${v.containerPath}${v.readOnly ? ":ro" : ""}`);
  }
  if (c.restart) args.push("--restart", c.restart);
  args.push(...healthArgs(c));
  args.push(c.image, ...c.command);
  return args;
}

const shellQuote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** The provider's healthcheck as docker CLI flags (a CMD test runs as its shell-quoted command line). */
export function healthArgs(c: RecordedContainer): string[] {
  const h = c.healthcheck;
  if (!h) return [];
  if (h.startInterval !== undefined) throw new Error(`${c.name}: healthcheck.startInterval is not replayed (docker 20.10 has no flag for it)`);
  const out: string[] = [];
  const [kind, ...rest] = h.tests ?? [];
  if (kind === "NONE") out.push("--no-healthcheck");
  else if (kind === "CMD-SHELL") out.push("--health-cmd", rest.join(" "));
  else if (kind === "CMD") out.push("--health-cmd", rest.map(shellQuote).join(" "));
  else if (kind !== undefined) throw new Error(`${c.name}: healthcheck test ${JSON.stringify(h.tests)} is neither CMD, CMD-SHELL nor NONE`);
  if (h.interval) out.push("--health-interval", h.interval);
  if (h.timeout) out.push("--health-timeout", h.timeout);
  if (h.startPeriod) out.push("--health-start-period", h.startPeriod);
  if (h.retries !== undefined) out.push("--health-retries", String(h.retries));
  return out;
}

// ---------------------------------------------------------------- ustar

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** One ustar header; names longer than 100 bytes go into the 155-byte prefix. */
function tarHeader(name: string, size: number, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(512, 0);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", name.length - 1);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
    if (Buffer.byteLength(base) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`path too long for ustar: ${name}`);
  }
  h.write(base, 0, 100, "utf8");
  h.write(octal(mode, 8), 100, 8, "ascii");
  h.write(octal(0, 8), 108, 8, "ascii"); // uid root
  h.write(octal(0, 8), 116, 8, "ascii"); // gid root
  h.write(octal(size, 12), 124, 12, "ascii");
  h.write(octal(mtime, 12), 136, 12, "ascii");
  h.write("        ", 148, 8, "ascii"); // checksum placeholder
  h.write("0", 156, 1, "ascii"); // regular file
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  h.write("root", 265, 32, "ascii");
  h.write("root", 297, 32, "ascii");
  h.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + " ", 148, 8, "ascii");
  return h;
}

/**
 * A tar archive of the uploads, paths relative to `/`, as the docker provider
 * sends them (file entries only: docker creates missing parents).
 */
export function uploadsTar(uploads: Upload[]): Buffer {
  const mtime = Math.floor(Date.now() / 1000);
  const parts: Buffer[] = [];
  for (const u of uploads) {
    const body = u.contentBase64 !== undefined ? Buffer.from(u.contentBase64, "base64") : Buffer.from(u.content ?? "", "utf8");
    const mode = u.permissions ? parseInt(u.permissions, 8) : u.executable ? 0o755 : 0o644;
    if (Number.isNaN(mode)) throw new Error(`upload ${u.file}: permissions ${u.permissions} are not octal`);
    parts.push(tarHeader(u.file.replace(/^\/+/, ""), body.length, mode, mtime), body, Buffer.alloc((512 - (body.length % 512)) % 512, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- bring up

/** Creates one container, delivers its uploads, joins further networks, starts it. */
export function createContainer(c: RecordedContainer): void {
  docker(createArgs(c));
  for (const n of c.networksAdvanced.slice(1)) {
    docker(["network", "connect", ...(n.ipv4Address ? ["--ip", n.ipv4Address] : []), ...(n.aliases ?? []).flatMap((a) => ["--alias", a]), n.name, c.name]);
  }
  if (c.uploads.length) docker(["cp", "-", `${c.name}:/`], uploadsTar(c.uploads));
  docker(["start", c.name]);
  if (c.mustRun && docker(["inspect", "-f", "{{.State.Running}}", c.name]) !== "true") {
    throw new Error(`${c.name} is not running after start: ${logsOf(c.name)}`);
  }
}

/** The provider's `wait`: the container's healthcheck reports healthy within waitTimeout seconds. */
export async function waitHealthy(c: RecordedContainer): Promise<void> {
  if (!c.wait) return;
  const limitMs = (c.waitTimeout ?? 60) * 1000;
  const t0 = Date.now();
  let status = "";
  while (Date.now() - t0 < limitMs) {
    status = docker(["inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", c.name]);
    if (status === "healthy") return;
    if (status === "none") throw new Error(`${c.name}: wait is set but the container has no healthcheck (the provider errors too)`);
    await sleep(1000);
  }
  throw new Error(`${c.name} was not healthy within waitTimeout ${limitMs / 1000} s (status ${status}): ${logsOf(c.name)}`);
}

function logsOf(name: string, lines = 40): string {
  const r = spawnSync("docker", ["logs", "--tail", String(lines), name], { encoding: "utf8" });
  return `${r.stdout}${r.stderr}`.trim();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the entrypoint has provisioned the container; fails with its log
 * when the entrypoint died (it would loop under the restart policy).
 */
export async function waitReady(name: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (spawnSync("docker", ["exec", name, "test", "-f", READY_FILE]).status === 0) return;
    const state = spawnSync("docker", ["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name], { encoding: "utf8" }).stdout.trim();
    const [status, restarts] = state.split(" ");
    if (status === "exited" || status === "dead" || Number(restarts) > 0) {
      const logs = logsOf(name);
      const hint = /at conffile prompt/.test(logs)
        ? "\n(an upload replaced a package's conffile before apt installed the package, and dpkg asked what to keep:" +
          " the entrypoint's apt-get install needs -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)"
        : "";
      throw new Error(`${name}: its entrypoint failed (${state}); last log lines:\n${logs}${hint}`);
    }
    await sleep(1000);
  }
  throw new Error(`${name} was not provisioned within ${timeoutMs / 1000} s; last log lines:\n${logsOf(name)}`);
}

/**
 * Creates the recorded cluster with the docker CLI: networks, volumes, then the
 * containers tier by tier, each tier provisioned before the next one starts.
 */
export async function replay(
  rec: RecordedCluster,
  opts: { readyTimeoutMs?: number; log?: (s: string) => void } = {},
): Promise<Array<{ tier: string[]; seconds: number }>> {
  const log = opts.log ?? (() => undefined);
  for (const n of rec.networks) createNetwork(n);
  for (const v of rec.volumes) createVolume(v);
  const timings: Array<{ tier: string[]; seconds: number }> = [];
  for (const tier of containerTiers(rec.containers)) {
    const t0 = Date.now();
    for (const c of tier) createContainer(c);
    log(`started ${tier.map((c) => c.name).join(", ")}; waiting for ${READY_FILE}`);
    await Promise.all(
      tier.map(async (c) => {
        await waitHealthy(c);
        await waitReady(c.name, opts.readyTimeoutMs ?? 10 * 60 * 1000);
      }),
    );
    timings.push({ tier: tier.map((c) => c.name), seconds: (Date.now() - t0) / 1000 });
  }
  return timings;
}

/** Removes every container, network and volume labelled with the stack. */
export function teardown(stack: string): string[] {
  return removeByLabel(stack);
}
