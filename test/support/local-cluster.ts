import { spawnSync } from "node:child_process";
import { modelFromStackFile, readStackFile } from "../../infra/config/stack-file";
import { allHosts, ClusterModel, LocalHostsInit } from "../../infra/model/types";
import { containerName } from "../../scripts/local-hosts";
import { down, up } from "../../scripts/stack";

/**
 * A throwaway cluster made from the dev stack file with its own name, ports and
 * subnet, so tests never touch the developer's own `dev` cluster.
 */
export interface Variant {
  stack: string;
  /** Added to every published port of the dev stack. */
  portOffset: number;
  /** Third octet of the 172.30.x.0/24 subnet. */
  subnet: number;
  webCount?: number;
  engine?: "apache" | "proxy-node";
  /** localHosts.init: what runs as each host container's first process. */
  init?: LocalHostsInit;
  /** Balancer settings on top of the dev stack's (extra would replace the whole balancer). */
  balancer?: Record<string, unknown>;
  /**
   * A balancer pair (balancer.redundancy): balancer2 at .6, the virtual address
   * at .4, and the public URL a forwarder to it; each balancer keeps its own URLs.
   */
  pair?: boolean;
  extra?: Record<string, unknown>;
}

type Raw = Record<string, unknown>;

function shiftUrl(url: unknown, offset: number): string | undefined {
  if (typeof url !== "string") return undefined;
  const u = new URL(url);
  u.port = String(Number(u.port || 80) + offset);
  return u.toString().replace(/\/$/, "");
}

function shiftHost(h: Raw, v: Variant): Raw {
  const ssh = h.ssh as Raw;
  return {
    ...h,
    address: String(h.address).replace(/^172\.30\.\d+\./, `172.30.${v.subnet}.`),
    ssh: { ...ssh, port: Number(ssh.port) + v.portOffset },
    ...(h.url ? { url: shiftUrl(h.url, v.portOffset) } : {}),
    ...(h.managerUrl ? { managerUrl: shiftUrl(h.managerUrl, v.portOffset) } : {}),
  };
}

export function variantOverrides(v: Variant): Raw {
  const dev = readStackFile("dev");
  const web = (dev.web as Raw[]).map((h) => shiftHost(h, v));
  for (let i = web.length; i < (v.webCount ?? web.length); i++) {
    const n = i + 1;
    web.push({
      name: `lb${n}`,
      address: `172.30.${v.subnet}.${10 + n}`,
      ssh: { host: "127.0.0.1", port: 2210 + n + v.portOffset, user: "root" },
      url: `http://127.0.0.1:${8090 + n + v.portOffset}`,
    });
  }
  const balancer = shiftHost(dev.balancer as Raw, v);
  balancer.managerAllow = [`172.30.${v.subnet}.1`];
  if (v.engine) balancer.engine = v.engine;
  if (v.pair) {
    const local = (port: number): string => `http://127.0.0.1:${port + v.portOffset}`;
    balancer.directUrl = local(8082);
    balancer.redundancy = {
      virtualAddress: `172.30.${v.subnet}.4`,
      routerId: v.subnet,
      peer: {
        address: `172.30.${v.subnet}.6`,
        ssh: { host: "127.0.0.1", port: 2206 + v.portOffset, user: "root" },
        directUrl: local(8084),
        managerUrl: local(8083),
      },
    };
  }
  Object.assign(balancer, v.balancer ?? {});
  const lh = dev.localHosts as Raw;
  return {
    balancer,
    data: shiftHost(dev.data as Raw, v),
    web: web.slice(0, v.webCount ?? web.length),
    localHosts: { ...lh, network: `drupal-cluster-${v.stack}`, subnet: `172.30.${v.subnet}.0/24`, ...(v.init ? { init: v.init } : {}) },
    ...(v.extra ?? {}),
  };
}

export interface RunningCluster {
  model: ClusterModel;
  balancerUrl: string;
  managerUrl: string;
  webUrls: Record<string, string>;
  upSeconds: number;
}

export async function bringUp(v: Variant, log: (s: string) => void = () => undefined): Promise<RunningCluster> {
  const overrides = variantOverrides(v);
  const t0 = Date.now();
  const out = await up(v.stack, { baseStack: "dev", overrides, onOutput: log });
  const upSeconds = (Date.now() - t0) / 1000;
  const model = modelFromStackFile(v.stack, overrides, "dev");
  return {
    model,
    balancerUrl: String(out.balancerUrl.value),
    managerUrl: String(out.balancerManagerUrl.value),
    webUrls: out.webUrls.value as Record<string, string>,
    upSeconds,
  };
}

export async function tearDown(v: Variant, log: (s: string) => void = () => undefined): Promise<string[]> {
  return down(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log });
}

/** Runs a shell command in one of the cluster's hosts. */
export function onHost(model: ClusterModel, host: string, script: string): { code: number; out: string } {
  const h = allHosts(model).find((x) => x.name === host);
  if (!h) throw new Error(`no host ${host}`);
  const r = spawnSync("docker", ["exec", containerName(model, h), "bash", "-c", script], { encoding: "utf8" });
  return { code: r.status ?? -1, out: (r.stdout + r.stderr).trim() };
}

/** What docker still holds for a stack, by label. */
export function leftovers(stack: string): string[] {
  const f = `label=drupal-cluster.stack=${stack}`;
  const q = (args: string[]): string[] => spawnSync("docker", args, { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
  return [
    ...q(["ps", "-a", "--filter", f, "--format", "container {{.Names}}"]),
    ...q(["network", "ls", "--filter", f, "--format", "network {{.Name}}"]),
    ...q(["volume", "ls", "--filter", f, "--format", "volume {{.Name}}"]),
  ];
}
