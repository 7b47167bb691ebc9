import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { ClusterModel } from "../model/types";
import { validateConfig } from "./validate";

export const PROJECT = "drupal-cluster";
export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/**
 * The plain (non-secret) settings of Pulumi.<stack>.yaml, for the scripts that
 * need the model without the Pulumi engine (local hosts, teardown, tests).
 */
export function readStackFile(stack: string, root = REPO_ROOT): Record<string, unknown> {
  const file = path.join(root, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`stack ${stack}: ${file} does not exist`);
  const doc = parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc?.config ?? {})) {
    if (!k.startsWith(`${PROJECT}:`)) continue;
    // Encrypted values are `{secure: ...}`: the engine decrypts them, we skip them.
    if (v !== null && typeof v === "object" && "secure" in (v as object)) continue;
    values[k.slice(PROJECT.length + 1)] = v;
  }
  return values;
}

/** The model of a stack; `fileStack` lets a variant stack start from another stack's file. */
export function modelFromStackFile(stack: string, overrides: Record<string, unknown> = {}, fileStack = stack): ClusterModel {
  return validateConfig({ project: PROJECT, stack }, { ...readStackFile(fileStack), ...overrides });
}
