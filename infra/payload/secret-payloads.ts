import * as pulumi from "@pulumi/pulumi";
import { ClusterModel } from "../model/types";
import { buildPayloads, HostPayload, PayloadSecrets, ProxyNodeArtifact } from "./index";
import { sha256 } from "./digest";

/**
 * Payloads for delivery. The layout (hosts, files, steps) never depends on a
 * secret, so it is built once from placeholders and can name resources; the few
 * files that do hold secrets get their content from a render with the real
 * values, which stays a Pulumi secret end to end.
 */
export interface DeliverablePayload {
  layout: HostPayload;
  content(path: string): pulumi.Input<string>;
  /** Hash of the named files' contents: a trigger that changes when any of them does. */
  digest(paths: string[]): pulumi.Input<string>;
}

const PLACEHOLDERS: PayloadSecrets = { dbPassword: "(secret)", hashSalt: "(secret)", managerToken: "(secret)", cronKey: "(secret)", tlsPrivateKey: "(secret)" };

export function deliverablePayloads(model: ClusterModel, secrets: pulumi.Output<PayloadSecrets>, artifact: ProxyNodeArtifact): DeliverablePayload[] {
  const layouts = buildPayloads(model, PLACEHOLDERS, artifact);
  const real = secrets.apply((s) => buildPayloads(model, s, artifact));
  return layouts.map((layout, i) => {
    const byPath = new Map(layout.files.map((f) => [f.path, f]));
    const content = (p: string): pulumi.Input<string> => {
      const f = byPath.get(p);
      if (!f) throw new Error(`payload of ${layout.host.name} has no file ${p}`);
      if (!f.secret) return f.content;
      return real.apply((ps) => ps[i].files.find((x) => x.path === p)!.content);
    };
    const digest = (paths: string[]): pulumi.Input<string> => {
      const parts = paths.map(content);
      if (paths.every((p) => !byPath.get(p)!.secret)) return sha256(parts.join("\0"));
      return pulumi.all(parts).apply((cs) => sha256(cs.join("\0")));
    };
    return { layout, content, digest };
  });
}
