/**
 * What `up`'s refresh found on the hosts, from the engine's events: a file
 * missing or changed, a step whose effect is gone, a service that is down.
 * The update that follows repairs exactly these; this says what they were.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";

export class DriftReport {
  readonly found: string[] = [];

  /** Feed every engine event of the run. */
  readonly onEvent = (e: EngineEvent): void => {
    const m = e.resOutputsEvent?.metadata;
    if (!m || m.op !== "refresh" || !m.type.startsWith("drupal-cluster:ssh:Remote")) return;
    const name = m.urn.slice(m.urn.lastIndexOf("::") + 2);
    const outs = m.new?.outputs as { found?: unknown } | undefined;
    if (m.new === undefined || outs === undefined) this.found.push(`${name}: missing on the host`);
    else if (typeof outs.found === "string" && outs.found !== "") this.found.push(`${name}: ${outs.found}`);
  };

  lines(): string[] {
    if (this.found.length === 0) return ["refresh: the hosts match the stack's state"];
    return [`refresh: ${this.found.length} difference(s) found on the hosts, repaired by this update:`, ...this.found.map((f) => `  ${f}`)];
  }
}
