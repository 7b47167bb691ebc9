import { ClusterModel, HostModel } from "../model/types";
import { render } from "./render";
import { PayloadFile, ProvisionStep, ServiceSpec } from "./types";

export function file(path: string, content: string, opts: Partial<Omit<PayloadFile, "path" | "content">> = {}): PayloadFile {
  return { path, content, mode: opts.mode ?? "0644", owner: opts.owner ?? "root:root", secret: opts.secret ?? false };
}

export function template(path: string, name: string, view: object, opts: Partial<Omit<PayloadFile, "path" | "content">> = {}): PayloadFile {
  return file(path, render(name, view), opts);
}

export function step(name: string, run: string, watch: PayloadFile[] = []): ProvisionStep {
  return { name, run, watch: watch.map((f) => f.path) };
}

/**
 * Debian's init scripts work both with systemd (prod) and without it (containers),
 * so `service` serves every target.
 */
export function sysvService(name: string, watch: PayloadFile[], reload: "reload" | "restart" = "reload"): ServiceSpec {
  return {
    name,
    // Debian's packages start their service on install with default settings, so
    // the first start must be a restart to pick up our files.
    start: `if service ${name} status >/dev/null 2>&1; then service ${name} restart; else service ${name} start; fi`,
    reload: `service ${name} ${reload}`,
    stop: `service ${name} stop || true`,
    watch: watch.map((f) => f.path),
  };
}

/** Values every template's header uses. */
export function baseView(model: ClusterModel, host: HostModel): { stack: string; hostName: string } {
  return { stack: `${model.project}/${model.stack}`, hostName: host.name };
}
