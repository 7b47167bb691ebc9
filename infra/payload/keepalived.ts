/**
 * The balancer pair (the guide's step three): keepalived (VRRP) moves one
 * virtual address between two balancers rendered from the same model, and
 * follows the engine, not just the host, through a check of its own.
 */
import { createHash } from "node:crypto";
import { ClusterModel, HostModel, RedundancyModel } from "../model/types";
import { baseView, clusterAddress, setting, sh, step, template } from "./common";
import { PayloadFile, ServiceSpec } from "./types";

/** The other balancer of a pair, or none. */
export function peerOf(model: ClusterModel, host: HostModel): HostModel | undefined {
  const r = model.balancer.redundancy;
  if (!r) return undefined;
  return host === r.peer ? model.balancer.host : r.peer;
}

/**
 * Who may use a balancer's managers: the stack's managerAllow, and with a pair
 * the other balancer, whose proxy-node carries manager changes across.
 */
export function managerAllowFor(model: ClusterModel, host: HostModel): string[] {
  const peer = peerOf(model, host);
  return peer ? [...model.balancer.managerAllow, peer.clusterAddress] : model.balancer.managerAllow;
}

export const KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf";
export const ENGINE_CHECK = "/usr/local/sbin/drupal-cluster-engine-check";

export interface KeepalivedPart {
  packages: string[];
  files: PayloadFile[];
  configure: ReturnType<typeof step>[];
  service: ServiceSpec;
}

/**
 * keepalived on one balancer of the pair. The first balancer has the higher
 * priority, so a fresh pair puts the address there; after that, with nopreempt,
 * whichever holds it keeps it until it fails.
 */
export function keepalived(model: ClusterModel, host: HostModel, r: RedundancyModel): KeepalivedPart {
  const b = model.balancer;
  const base = baseView(model, host);
  const peer = peerOf(model, host)!;
  const iface = setting(model, "balancer.redundancy.interface", r.interface);
  const self = clusterAddress(model, host);
  const wrongInterface =
    `${model.project}:balancer.redundancy.interface: ${r.interface} does not hold ${host.name}'s address ${host.clusterAddress}; ` +
    "set it to the interface that does (see ip -o -4 addr)";
  // The engine check waits at most this long: under keepalived's own timeout.
  const maxTime = 2;
  const check = template(ENGINE_CHECK, "balancer/keepalived/engine-check.sh.hbs", { ...base, httpPort: b.httpPort, maxTime }, { mode: "0755" });
  const config = template(
    KEEPALIVED_CONFIG,
    "balancer/keepalived/keepalived.conf.hbs",
    {
      ...base,
      checkScript: ENGINE_CHECK,
      checkTimeout: maxTime + 1,
      interface: iface,
      routerId: r.routerId,
      priority: host === b.host ? 150 : 100,
      advertInterval: r.advertInterval,
      nopreempt: !r.preempt,
      selfAddress: self,
      peerAddress: clusterAddress(model, peer),
      authPass: vrrpPassword(model),
      virtualAddress: setting(model, "balancer.redundancy.virtualAddress", r.virtualAddress),
    },
    // Root only, as keepalived wants its config; the password in it is no secret (see vrrpPassword).
    { mode: "0600" },
  );
  return {
    packages: ["keepalived", "iproute2", "curl"],
    files: [check, config],
    configure: [
      // keepalived would start and never hold the address on a wrong interface: say so now.
      step(
        "check-vrrp-interface",
        sh`ip -o -4 addr show dev ${iface} 2>/dev/null | grep -qF ${` ${host.clusterAddress}/`} || { echo ${wrongInterface} >&2; exit 1; }`,
      ),
    ],
    service: keepalivedService([check, config]),
  };
}

const ON_SYSTEMD = "[ -d /run/systemd/system ]";

/**
 * keepalived as a service. Debian's init script has no `status`, and its
 * `restart` stops without waiting, so the start that follows finds the old
 * process and does nothing, and then nothing runs: hence a status of our own
 * (its processes, or systemd's word) and a stop that waits.
 */
function keepalivedService(watch: PayloadFile[]): ServiceSpec {
  // Its processes, not its pidfile: the pidfile goes before the process has ended.
  const running = "pidof keepalived >/dev/null";
  const stopAndWait = `service keepalived stop >/dev/null 2>&1; i=0; while ${running} && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done`;
  // A host that was killed keeps its pidfiles (no tmpfs /run in a plain container):
  // a pid reused since would make keepalived think it runs already and not start.
  const stalePidfiles = `${running} || rm -f /run/keepalived.pid /run/vrrp.pid /run/checkers.pid`;
  return {
    name: "keepalived",
    start: `if ${ON_SYSTEMD}; then systemctl enable --quiet keepalived && systemctl restart keepalived; else ${stopAndWait}; ${stalePidfiles}; service keepalived start; fi`,
    // SIGHUP: the new config is read and the VRRP state kept, so a change moves no address.
    reload: "service keepalived reload",
    stop: `${stopAndWait}; true`,
    status: `if ${ON_SYSTEMD}; then systemctl is-enabled --quiet keepalived && systemctl is-active --quiet keepalived; else ${running}; fi`,
    watch: watch.map((f) => f.path),
  };
}

/**
 * VRRP version 2's password: at most 8 characters, sent in clear with every
 * advert, so it only keeps a misconfigured neighbour (another cluster's pair
 * with the same router id) out, never an attacker on the LAN. Derived from the
 * stack and the router id, which both balancers always share: from a secret,
 * a rotation would reach one balancer before the other, and in between each
 * would refuse the other's adverts and both would take the address.
 */
export function vrrpPassword(model: ClusterModel): string {
  const r = model.balancer.redundancy!;
  return createHash("sha256").update(`drupal-cluster vrrp ${model.project}/${model.stack}/${r.routerId}`).digest("base64url").slice(0, 8);
}
