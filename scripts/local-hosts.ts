/**
 * Local Debian hosts for an ssh-target stack (dev): one container per host from
 * the host image (Debian + sshd), on a private docker network, with the cluster
 * addresses the stack names and only 127.0.0.1 ports published.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { allHosts, ClusterModel, HostModel } from "../infra/model/types";
import { PROJECT } from "../infra/config/stack-file";

export const HOST_IMAGE = process.env.DRUPAL_CLUSTER_HOST_IMAGE ?? "drupal-cluster/host:bookworm";
/** The same host with systemd as its first process (localHosts.init: systemd). */
export const SYSTEMD_HOST_IMAGE = process.env.DRUPAL_CLUSTER_SYSTEMD_HOST_IMAGE ?? "drupal-cluster/host:bookworm-systemd";
const LABEL = "drupal-cluster.stack";

function docker(args: string[], input?: string, env?: NodeJS.ProcessEnv): string {
  const r = spawnSync("docker", args, { encoding: "utf8", input, env: env ?? process.env });
  if (r.status !== 0) throw new Error(`docker ${args.slice(0, 3).join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/** ed25519 key pair for the stack's hosts, generated once per machine (git-ignored). */
export function stackKey(root: string, stack: string): { privateKey: string; publicKey: string } {
  const dir = path.join(root, ".secrets");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${stack}-ssh-key`);
  if (!fs.existsSync(file)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `drupal-cluster-${stack}`, "-f", file]);
  return { privateKey: fs.readFileSync(file, "utf8"), publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim() };
}

/**
 * The ed25519 host key of one local host, made once per machine (git-ignored).
 * The container gets the private half, the stack's localHostKeys the public
 * one, so the ssh target checks these hosts like any other.
 */
export function hostKeyPair(root: string, stack: string, host: string): { privateKey: string; publicKey: string } {
  const dir = path.join(root, ".secrets", `${stack}-host-keys`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, host);
  if (!fs.existsSync(file) && !adoptHostKey(`${PROJECT}-${stack}-${host}`, file)) {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${stack}-${host}`, "-f", file]);
  }
  return { privateKey: fs.readFileSync(file, "utf8"), publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ") };
}

/**
 * A host container made before its key was recorded here (by an older version
 * of this script) keeps its own key: read it through docker, a channel we
 * trust, rather than give the host a key it does not have.
 */
function adoptHostKey(container: string, file: string): boolean {
  const r = spawnSync("docker", ["exec", container, "cat", "/etc/ssh/ssh_host_ed25519_key"], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.includes("PRIVATE KEY")) return false;
  fs.writeFileSync(file, r.stdout, { mode: 0o600 });
  fs.writeFileSync(`${file}.pub`, execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }));
  return true;
}

/** localHostKeys for a stack: each host's public key, by host name. */
export function localHostKeys(root: string, stack: string, hostNames: readonly string[]): Record<string, string> {
  return Object.fromEntries(hostNames.map((h) => [h, hostKeyPair(root, stack, h).publicKey]));
}

function portOf(url: string | undefined): number | undefined {
  return url ? Number(new URL(url).port || 80) : undefined;
}

function publishes(model: ClusterModel, h: HostModel): string[] {
  const out = [`127.0.0.1:${h.ssh!.port}:22`];
  const http = portOf(h.url);
  if (http) out.push(`127.0.0.1:${http}:${h.role === "balancer" ? model.balancer.httpPort : 80}`);
  const pair = model.balancer.redundancy;
  const mgr = h.role !== "balancer" ? undefined : portOf(pair && h === pair.peer ? pair.peerManagerUrl : model.balancer.managerUrl);
  if (mgr) out.push(`127.0.0.1:${mgr}:${model.balancer.managerPort}`);
  const tls = h.role === "balancer" ? model.balancer.tls : undefined;
  if (tls) out.push(`127.0.0.1:${Number(new URL(tls.url).port || 443)}:${tls.httpsPort}`);
  return out;
}

/**
 * How the forwarder connects on: as a plain TCP client on the cluster network,
 * no retries of its own. Its kernel resends an unanswered SYN (after 1 s, then
 * 3 s, ...), as a client's does, and a refused or unreachable connection fails
 * the request, as it fails a client's. The timeout only keeps socat from
 * giving up before the kernel does.
 */
export const FRONT_CONNECT_OPTIONS = "connect-timeout=30";

/** The forwarder's address: .3 of the cluster network (the virtual address is .4 in our stacks). */
export function frontAddress(model: ClusterModel): string {
  return model.localHosts!.subnet.split("/")[0].replace(/\.0$/, ".3");
}

/** The forwarder that stands for the clients' network of a balancer pair (see frontUp). */
export function frontName(model: ClusterModel): string {
  return `${model.project}-${model.stack}-front`;
}

/**
 * A balancer pair's virtual address lives on the private cluster network, and a
 * published port leads to one container only. So the stack's public URL is a
 * forwarder on that network, standing for the clients' network: each connection
 * to 127.0.0.1:<balancer.url's port> goes on to the virtual address, wherever
 * keepalived has put it at that moment. Nothing else on this machine is sent
 * to the cluster network.
 */
function frontUp(model: ClusterModel, labels: string[]): void {
  const pair = model.balancer.redundancy;
  const port = portOf(model.balancer.publicUrl);
  if (!pair || !port) return;
  const name = frontName(model);
  const http = model.balancer.httpPort;
  // What it forwards, as a label: a front made for another address or port is made again.
  const forwards = `127.0.0.1:${port}->${pair.virtualAddress}:${http}`;
  const made = spawnSync("docker", ["inspect", "-f", '{{.State.Running}} {{index .Config.Labels "drupal-cluster.forwards"}}', name], {
    encoding: "utf8",
  }).stdout.trim();
  if (made && made.split(" ")[1] !== forwards) {
    docker(["rm", "-f", name]);
  } else if (made.startsWith("true")) return;
  else if (made.startsWith("false")) {
    docker(["start", name]);
    return;
  }
  docker([
    "run",
    "-d",
    "--name",
    name,
    "--hostname",
    "front",
    ...labels,
    "--label",
    "drupal-cluster.host=front",
    "--label",
    `drupal-cluster.forwards=${forwards}`,
    "--network",
    model.localHosts!.network,
    // A fixed address: docker would otherwise hand out the lowest free one, which may be the virtual address.
    "--ip",
    frontAddress(model),
    "--restart",
    "unless-stopped",
    "-p",
    `127.0.0.1:${port}:${http}`,
    "--entrypoint",
    "socat",
    HOST_IMAGE,
    `TCP-LISTEN:${http},fork,reuseaddr`,
    `TCP:${pair.virtualAddress}:${http},${FRONT_CONNECT_OPTIONS}`,
  ]);
}

export function containerName(model: ClusterModel, h: HostModel): string {
  return `${model.project}-${model.stack}-${h.name}`;
}

/** Creates what is missing; hosts that already run are left alone. */
export function hostsUp(model: ClusterModel, publicKey: string, root: string): void {
  const lh = model.localHosts;
  if (!lh) throw new Error(`stack ${model.stack} has no localHosts setting: its hosts are not local containers`);
  for (const h of allHosts(model)) {
    if (h.ssh?.host !== "127.0.0.1") throw new Error(`host ${h.name}: local hosts must be reached on 127.0.0.1, not ${h.ssh?.host}`);
  }
  const labels = ["--label", `${LABEL}=${model.stack}`];
  if (!docker(["network", "ls", "-q", "--filter", `name=^${lh.network}$`])) {
    docker(["network", "create", "--subnet", lh.subnet, ...labels, lh.network]);
  }
  if (model.files.share === "external" && !docker(["volume", "ls", "-q", "--filter", `name=^${lh.filesVolume}$`])) {
    docker(["volume", "create", ...labels, lh.filesVolume]);
  }
  for (const h of allHosts(model)) {
    const name = containerName(model, h);
    remadeForPair(model, h, name);
    const state = spawnSync("docker", ["inspect", "-f", "{{.State.Running}}", name], { encoding: "utf8" }).stdout.trim();
    if (state === "true") continue;
    if (state === "false") {
      docker(["start", name]);
      continue;
    }
    const args = ["run", "-d", "--name", name, "--hostname", h.name, ...labels, "--label", `drupal-cluster.host=${h.name}`];
    args.push("--network", lh.network, "--ip", h.clusterAddress, "-e", `AUTHORIZED_KEY=${publicKey}`);
    // The private key reaches docker through its environment, not its arguments (which ps shows).
    args.push("-e", "HOST_KEY_ED25519");
    const env = { ...process.env, HOST_KEY_ED25519: Buffer.from(hostKeyPair(root, model.stack, h.name).privateKey).toString("base64") };
    for (const p of publishes(model, h)) args.push("-p", p);
    if (h.role === "web" && model.files.share === "external") args.push("-v", `${lh.filesVolume}:${model.files.publicPath}`);
    // keepalived adds and removes the pair's virtual address on the balancers' interface.
    if (h.role === "balancer" && model.balancer.redundancy) args.push("--cap-add", "NET_ADMIN");
    // What the balancer's payload sets on a real host (its /proc/sys is read-only in here): an engine switch moves waiting connections across.
    if (h.role === "balancer") args.push("--sysctl", "net.ipv4.tcp_migrate_req=1");
    if (lh.init === "systemd") args.push(...systemdRunArgs(), SYSTEMD_HOST_IMAGE);
    else args.push(HOST_IMAGE);
    docker(args, undefined, env);
  }
  frontUp(model, labels);
}

/**
 * A balancer made before balancer.redundancy was set has no NET_ADMIN (keepalived
 * could not add the address) and publishes balancer.url's port, which is now the
 * front's. Such a container is removed here and made again below, and the
 * following `up` provisions it again, as it does any host made empty.
 */
function remadeForPair(model: ClusterModel, h: HostModel, name: string): void {
  if (h.role !== "balancer" || !model.balancer.redundancy) return;
  const r = spawnSync("docker", ["inspect", "-f", "{{json .HostConfig.CapAdd}}", name], { encoding: "utf8" });
  if (r.status !== 0) return;
  if (r.stdout.includes("NET_ADMIN")) return;
  console.log(`${name}: made before balancer.redundancy (no NET_ADMIN for keepalived): making it again; this up provisions it again`);
  docker(["rm", "-f", name]);
}

/**
 * What systemd needs to run as a container's first process, unprivileged: its
 * own /run, and the cgroup tree. A cgroup v1 host shares its hierarchy read-only
 * (systemd then uses the container's own slice); with cgroup v2 docker gives the
 * container a private cgroup namespace, which is all systemd needs.
 */
function systemdRunArgs(): string[] {
  const args = ["--tmpfs", "/run", "--tmpfs", "/run/lock"];
  const v2 = fs.existsSync("/sys/fs/cgroup/cgroup.controllers");
  return v2 ? [...args, "--cgroupns", "private"] : [...args, "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"];
}

/**
 * Starts the stack's host containers that exist but are stopped (after a
 * reboot of this machine): what lives on them can only be removed while they run.
 */
export function startStoppedHosts(model: ClusterModel): string[] {
  const started: string[] = [];
  for (const h of allHosts(model)) {
    const name = containerName(model, h);
    const state = spawnSync("docker", ["inspect", "-f", "{{.State.Running}}", name], { encoding: "utf8" }).stdout.trim();
    if (state === "false") {
      docker(["start", name]);
      started.push(name);
    }
  }
  return started;
}

/**
 * After an `up` that took hosts out of the stack (a web server removed from
 * `web`): their containers, found by the stack's label and a host name the
 * model no longer has. Pulumi has removed what lived on them by then (files,
 * steps, services, while they still ran); a failed `up` keeps them, since
 * the state may still list things on them. The pair's forwarder is not a host.
 */
export function removeLeftHosts(model: ClusterModel): string[] {
  const keep = new Set([...allHosts(model).map((h) => h.name), "front"]);
  const rows = docker(["ps", "-a", "--filter", `label=${LABEL}=${model.stack}`, "--format", '{{.Names}} {{.Label "drupal-cluster.host"}}'])
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" "));
  const left = rows.filter(([, host]) => host && !keep.has(host)).map(([name]) => name);
  if (left.length) docker(["rm", "-f", ...left]);
  return left;
}

/** Removes every container, network and volume carrying the stack's label. */
export function removeByLabel(stack: string): string[] {
  const filter = ["--filter", `label=${LABEL}=${stack}`];
  const removed: string[] = [];
  const containers = docker(["ps", "-aq", ...filter])
    .split("\n")
    .filter(Boolean);
  if (containers.length) {
    docker(["rm", "-f", ...containers]);
    removed.push(`${containers.length} container(s)`);
  }
  const networks = docker(["network", "ls", "-q", ...filter])
    .split("\n")
    .filter(Boolean);
  if (networks.length) {
    docker(["network", "rm", ...networks]);
    removed.push(`${networks.length} network(s)`);
  }
  const volumes = docker(["volume", "ls", "-q", ...filter])
    .split("\n")
    .filter(Boolean);
  if (volumes.length) {
    docker(["volume", "rm", "-f", ...volumes]);
    removed.push(`${volumes.length} volume(s)`);
  }
  return removed;
}

/** Every stack that has anything on this machine, by label. */
export function labelledStacks(): string[] {
  const out = new Set<string>();
  for (const kind of [
    ["ps", "-a"],
    ["network", "ls"],
    ["volume", "ls"],
  ]) {
    const fmt = `{{.Label "${LABEL}"}}`;
    for (const l of docker([...kind, "--filter", `label=${LABEL}`, "--format", fmt]).split("\n")) if (l) out.add(l);
  }
  return [...out];
}
