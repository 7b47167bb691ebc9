import * as pulumi from "@pulumi/pulumi";
import { secretAdvice } from "./advice";
import { ClusterModel } from "../model/types";
import { ConfigError } from "./errors";
import { checkSecret } from "./secrets";
import { checkTlsPrivateKey } from "./tls";
import { SECRET_KEYS, SecretKey, validateConfig } from "./validate";

/** The stack's secrets, as Pulumi secrets: never plain values in the program. */
export type StackSecrets = Record<SecretKey, pulumi.Output<string>>;

export interface LoadedStack {
  model: ClusterModel;
  secrets: StackSecrets;
}

/** Config values under `<project>:` as stored by Pulumi: objects and lists arrive as JSON text. */
export function projectValues(project: string, all: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const prefix = `${project}:`;
  for (const [k, raw] of Object.entries(all)) {
    if (!k.startsWith(prefix)) continue;
    const key = k.slice(prefix.length);
    if ((SECRET_KEYS as readonly string[]).includes(key)) continue;
    out[key] = parseValue(raw);
  }
  return out;
}

function parseValue(raw: string): unknown {
  const t = raw.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** Reads and validates the whole stack config once, before any resource is declared. */
export function loadStack(): LoadedStack {
  const project = pulumi.getProject();
  const model = validateConfig({ project, stack: pulumi.getStack() }, projectValues(project, pulumi.runtime.allConfig()));
  const config = new pulumi.Config(project);
  const needed: SecretKey[] = ["dbPassword", "hashSalt", "managerToken", "cronKey"];
  if (model.target === "ssh") needed.push("sshPrivateKey");
  if (model.balancer.tls) needed.push("tlsPrivateKey");
  const secrets = {} as StackSecrets;
  for (const key of needed) {
    // The engine hands the program decrypted config, so the plain value can be
    // checked here, before any resource exists; only the Output leaves this loop.
    const plain = config.get(key);
    if (plain === undefined) {
      throw new ConfigError(`${project}:${key}`, `secret is missing for stack ${pulumi.getStack()}; set it with: ${secretAdvice(pulumi.getStack(), key)}`);
    }
    checkSecret(project, pulumi.getStack(), key, plain);
    if (key === "tlsPrivateKey" && model.balancer.tls) checkTlsPrivateKey(project, model.balancer.tls, plain);
    secrets[key] = config.requireSecret(key);
  }
  if (model.target !== "ssh") secrets.sshPrivateKey = pulumi.secret("");
  if (!model.balancer.tls) secrets.tlsPrivateKey = pulumi.secret("");
  return { model, secrets };
}
