/**
 * A rolling update's progress in `npm run up`'s output, from the engine's
 * events: one line per web server and step (draining, applying, health gate,
 * back in rotation) as it starts. The steps' own output (how long the drain
 * took) stays in the resources' state; these lines say where the rollout is.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";

export type RolloutStep = "draining" | "applying" | "health gate" | "back in rotation";

export interface RolloutMark {
  host: string;
  step: RolloutStep;
  /** ms since the first event of the run. */
  at: number;
}

const CHANGES = new Set(["create", "update", "replace", "create-replacement", "delete", "delete-replaced"]);

export class RolloutProgress {
  readonly marks: RolloutMark[] = [];
  private readonly t0 = Date.now();

  /** Web servers in a rolling update: those with a drain step (none with rollout parallel). */
  private readonly webHosts: string[] = [];

  constructor(private readonly say: (line: string) => void = (l) => console.log(l)) {}

  readonly onEvent = (e: EngineEvent): void => {
    const pre = e.resourcePreEvent?.metadata;
    const done = e.resOutputsEvent?.metadata;
    const m = pre ?? done;
    if (!m || !m.type.startsWith("drupal-cluster:ssh:Remote")) return;
    const name = m.urn.slice(m.urn.lastIndexOf("::") + 2);
    const drain = /^(.+)-rollout-drain$/.exec(name);
    if (drain && !this.webHosts.includes(drain[1])) this.webHosts.push(drain[1]);
    if (!CHANGES.has(m.op)) return;
    const host = this.webHosts.find((h) => name.startsWith(`${h}-`) || name.startsWith(`${h}:`));
    if (!host) return;
    const step = name.slice(host.length + 1);
    // A step's removal (rollout parallel) is no step of a rollout.
    const runs = m.op === "create" || m.op === "update";
    // A drain created with its host finds nothing to drain; one created for a serving host drains it.
    if (pre && step === "rollout-drain" && runs) this.mark(host, "draining");
    else if (pre && step === "rollout-gate" && runs) this.mark(host, "health gate");
    else if (done && step === "rollout-enable" && runs) this.mark(host, "back in rotation");
    else if (pre && !step.startsWith("rollout-") && !this.marks.some((x) => x.host === host && x.step === "applying")) this.mark(host, "applying");
  };

  private mark(host: string, step: RolloutStep): void {
    const at = Date.now() - this.t0;
    this.marks.push({ host, step, at });
    this.say(`rollout: ${host.padEnd(8)} ${step.padEnd(17)} (+${(at / 1000).toFixed(1)} s)`);
  }
}
