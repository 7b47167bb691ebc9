import { ClusterModel, HostModel, WebMember } from "../model/types";
import { shellArg, Sourced, sourced, Text } from "./escape";
import { render } from "./render";
import { PayloadFile, ProvisionStep, ServiceSpec } from "./types";

export function file(path: string, content: string, opts: Partial<Omit<PayloadFile, "path" | "content">> = {}): PayloadFile {
  return { path, content, mode: opts.mode ?? "0644", owner: opts.owner ?? "root:root", secret: opts.secret ?? false };
}

export function template(path: string, name: string, view: object, opts: Partial<Omit<PayloadFile, "path" | "content">> = {}): PayloadFile {
  return file(path, render(name, view), opts);
}

/** A setting's value, tagged with its key as the operator writes it (`drupal-cluster:serverName`). */
export function setting(model: ClusterModel, key: string, value: string): Sourced {
  return sourced(`${model.project}:${key}`, value);
}

/** Where a host's cluster address comes from: its own setting, or docker.subnet on the docker target. */
export function addressKey(model: ClusterModel, host: HostModel): string {
  if (model.target === "docker") return "docker.subnet";
  if (host.role === "web") return `web[${model.web.findIndex((w) => w.host === host)}].address`;
  if (host === model.balancer.redundancy?.peer) return "balancer.redundancy.peer.address";
  return `${host.role}.address`;
}

export function clusterAddress(model: ClusterModel, host: HostModel): Sourced {
  return setting(model, addressKey(model, host), host.clusterAddress);
}

/** The settings a web server's route comes from (web[i].route, or web[i].name by default). */
export function routeKey(model: ClusterModel, member: WebMember): string {
  const i = model.web.indexOf(member);
  return `web[${i}].route`;
}

/**
 * A shell command line from literal code and values: every value goes through
 * shellArg, so steps and templates quote the same way. Use as sh`mkdir -p ${path}`.
 */
export function sh(code: TemplateStringsArray, ...values: Array<Text | readonly Text[]>): string {
  return code.reduce((out, part, i) => out + part + (i < values.length ? shellArg(values[i]) : ""), "");
}

export function step(name: string, run: string, watch: PayloadFile[] = []): ProvisionStep {
  return { name, run, watch: watch.map((f) => f.path) };
}

/**
 * Debian's init scripts work both with systemd (prod) and without it (containers),
 * so `service` serves every target. On a host with systemd the unit is also
 * enabled, so the host comes back whole after a reboot; a unit someone disabled
 * reads as stopped, and the next `up` enables it again. `unit` is the systemd
 * name where the init script's is only an alias (systemctl refuses to enable
 * an alias).
 */
export function sysvService(name: string, watch: PayloadFile[], reload: "reload" | "restart" = "reload", unit = name): ServiceSpec {
  const onSystemd = "[ -d /run/systemd/system ]";
  return {
    name,
    // Debian's packages start their service on install with default settings, so
    // the first start must be a restart to pick up our files.
    start:
      `if ${onSystemd}; then ` +
      sh`systemctl enable --quiet ${unit}; fi; ` +
      sh`if service ${name} status >/dev/null 2>&1; then service ${name} restart; else service ${name} start; fi`,
    reload: sh`service ${name} ${reload}`,
    // Removed from the stack: off now and at the next boot (an engine switch must not
    // leave Apache enabled to take proxy-node's port when the host restarts).
    stop: `if ${onSystemd}; then ` + sh`systemctl disable --quiet ${unit} 2>/dev/null || true; fi; ` + sh`service ${name} stop || true`,
    status: `{ ! ${onSystemd} || ` + sh`systemctl is-enabled --quiet ${unit}; } && service ${name} status`,
    watch: watch.map((f) => f.path),
  };
}

/**
 * The service, restarted rather than reloaded when one of `files` changes:
 * for files a graceful reload does not apply. Its other files keep their reload.
 */
export function restartOn(svc: ServiceSpec, files: PayloadFile[]): ServiceSpec {
  return { ...svc, restart: sh`service ${svc.name} restart`, restartWatch: files.map((f) => f.path) };
}

/** Values every template's header uses. */
export function baseView(model: ClusterModel, host: HostModel): { stack: string; hostName: Sourced } {
  const i = model.web.findIndex((w) => w.host === host);
  const key = i >= 0 ? `web[${i}].name` : host === model.balancer.redundancy?.peer ? "balancer.redundancy.peer.name" : `${host.role} (host name)`;
  return { stack: `${model.project}/${model.stack}`, hostName: setting(model, key, host.name) };
}

/** Where a host without an init system finds what to start when it boots. */
export const BOOT_DIR = "/etc/drupal-cluster/boot.d";

/**
 * One start script per service, in the order the services start. A host with
 * systemd starts its enabled services itself and never reads these; the local
 * dev hosts' containers run them when they start again (scripts/host-image),
 * so a host that was killed and started comes back whole.
 */
export function bootFiles(services: readonly ServiceSpec[]): PayloadFile[] {
  return services.map((svc, i) =>
    file(
      `${BOOT_DIR}/${String(10 * (i + 1)).padStart(2, "0")}-${svc.name}`,
      `#!/bin/sh\n# Managed by drupal-cluster: starts ${svc.name} when this host boots without an init system.\n${svc.start}\n`,
      { mode: "0755" },
    ),
  );
}
