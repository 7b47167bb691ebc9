import * as pulumi from "@pulumi/pulumi";
import { ClusterModel, WebMember } from "../model/types";
import { sha256 } from "../payload/digest";
import { rolloutScripts } from "../payload/rollout";
import { DeliverablePayload } from "../payload/secret-payloads";
import { RemoteCommand, SshConnectionArgs } from "../targets/ssh/resources";

/** What a web server's change is bracketed with in a rolling update: the balancer to drain it on, the scripts. */
export interface WebRollout {
  model: ClusterModel;
  member: WebMember;
  /** The first balancer: proxy-node there carries each change to a pair's second. */
  balancer: SshConnectionArgs;
}

/** Changes with everything the host is given (files, packages, steps, services): each such change is drained for. */
export function payloadDigest(p: DeliverablePayload): pulumi.Input<string> {
  const { layout } = p;
  const shape = sha256(JSON.stringify({ ...layout, files: layout.files.map((f) => [f.path, f.mode, f.owner]) }));
  return pulumi.all([p.digest(layout.files.map((f) => f.path)), shape]).apply(([files, rest]) => sha256(`${files}\0${rest}`));
}

/**
 * The drain, on the balancer. Created, it drains too: it is new also when a
 * stack switches from parallel to rolling, or first runs with rollouts, and the
 * host may be changed by the same up. For a new web server the script finds
 * nothing to drain: no balancer serving yet, or none that has it as a member.
 */
export function drainStep(name: string, r: WebRollout, digest: pulumi.Input<string>, opts: pulumi.CustomResourceOptions): RemoteCommand {
  const s = rolloutScripts(r.model, r.member);
  return new RemoteCommand(
    `${name}-rollout-drain`,
    {
      connection: r.balancer,
      create: s.drain,
      delete: "true",
      triggers: [digest],
    },
    opts,
  );
}

/**
 * After the host's last step: its health gate on the host itself, then back in
 * rotation on the balancer. A new host passes the gate before the balancer adds it.
 */
export function backInRotation(
  name: string,
  r: WebRollout,
  web: SshConnectionArgs,
  digest: pulumi.Input<string>,
  opts: pulumi.CustomResourceOptions,
): RemoteCommand {
  const s = rolloutScripts(r.model, r.member);
  const gate = new RemoteCommand(`${name}-rollout-gate`, { connection: web, create: s.gate, delete: "true", triggers: [digest] }, opts);
  return new RemoteCommand(
    `${name}-rollout-enable`,
    // Its check: no rollout holds the member out. A refresh then finds one a failed
    // rollout left out, and the next up puts it back even with the same payload.
    { connection: r.balancer, create: s.enable, delete: s.forget, check: s.enableCheck, triggers: [digest] },
    { ...opts, dependsOn: [gate] },
  );
}
