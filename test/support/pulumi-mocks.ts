/**
 * Runs the cluster program under `pulumi.runtime.setMocks` and records every
 * resource registration as the engine would see it: type, name, parent,
 * dependencies and the serialized inputs (with secrets still wrapped), so tests
 * can check the graph and that secrets stay secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "./cluster-configs";

// Internal to the SDK (not in its typings), but exported from the module.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const settings = require("@pulumi/pulumi/runtime/settings") as {
  getMonitor(): { registerResource: (req: any, cb: (err: unknown, resp: any) => void) => unknown } | undefined;
  waitForRPCs(): Promise<void>;
};

export const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface Registration {
  type: string;
  name: string;
  custom: boolean;
  urn: string;
  parent: string;
  /** URNs this resource waits for (dependsOn plus input dependencies). */
  dependencies: string[];
  /** The inputs as serialized for the engine: secrets are `{[SECRET_SIG_KEY]: SECRET_SIG, value}`. */
  wire: Record<string, unknown>;
  /** The inputs with secrets unwrapped to their values. */
  inputs: Record<string, any>;
}

export const TEST_STACK_SECRETS = {
  dbPassword: "unit-DB-password-5c1e",
  hashSalt: "unit-hash-salt-8d2f",
  managerToken: "unit-manager-token-3a7b",
  cronKey: "unit-cron-key-9d41",
  sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nunit-ssh-key-6e4c\n-----END OPENSSH PRIVATE KEY-----",
};

/** Mocks that answer per resource type with what the real provider would add. */
const mocks: pulumi.runtime.Mocks = {
  newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, any> } {
    switch (args.type) {
      case "docker:index/network:Network":
      case "docker:index/volume:Volume":
        return { id: `${args.inputs.name}-id`, state: { ...args.inputs } };
      case "docker:index/container:Container":
        return { id: `${args.inputs.name}-id`, state: { ...args.inputs, ipAddress: args.inputs.networksAdvanced?.[0]?.ipv4Address } };
      default:
        if (args.type.startsWith("drupal-cluster:ssh:Remote")) {
          return { id: `${args.name}-id`, state: { ...args.inputs, stdout: "", hash: "0".repeat(64), applied: true, found: "" } };
        }
        return { id: `${args.name}-id`, state: { ...args.inputs } };
    }
  },
  call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
    return args.inputs;
  },
};

export interface MockRun<T> {
  result?: T;
  error?: unknown;
  registrations: Registration[];
}

/**
 * Sets up mocks and config for one stack, runs `program`, waits until every
 * registration has reached the (mock) engine, and returns what was registered.
 * `values` are the plain settings (objects become JSON text, as Pulumi stores them).
 */
export async function runWithMocks<T>(
  stack: string,
  values: Record<string, unknown>,
  secrets: Partial<typeof TEST_STACK_SECRETS> & { tlsPrivateKey?: string },
  program: () => T,
): Promise<MockRun<T>> {
  await pulumi.runtime.setMocks(mocks, PROJECT, stack, false);
  const registrations: Registration[] = [];
  const monitor = settings.getMonitor();
  if (!monitor) throw new Error("no mock monitor after setMocks");
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, cb: (err: unknown, resp: any) => void) =>
    original(req, (err: unknown, resp: any) => {
      if (!err) {
        registrations.push({
          type: req.getType(),
          name: req.getName(),
          custom: req.getCustom(),
          urn: resp.getUrn(),
          parent: req.getParent(),
          dependencies: req.getDependenciesList(),
          wire: req.getObject()?.toJavaScript() ?? {},
          inputs: unwrapSecrets(req.getObject()?.toJavaScript() ?? {}) as Record<string, any>,
        });
      }
      cb(err, resp);
    });

  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) config[`${PROJECT}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  const secretKeys: string[] = [];
  for (const [k, v] of Object.entries(secrets)) {
    if (v === undefined) continue;
    config[`${PROJECT}:${k}`] = v;
    secretKeys.push(`${PROJECT}:${k}`);
  }
  pulumi.runtime.setAllConfig(config, secretKeys);

  const run: MockRun<T> = { registrations };
  try {
    run.result = program();
  } catch (e) {
    run.error = e;
  }
  await settings.waitForRPCs();
  return run;
}

export function isWireSecret(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** Every plain (non-secret) string in serialized inputs, with its property path. */
export function plainStrings(v: unknown, at = ""): Array<[string, string]> {
  if (isWireSecret(v)) return [];
  if (typeof v === "string") return [[at, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => plainStrings(x, `${at}[${i}]`));
  if (typeof v === "object" && v !== null) return Object.entries(v).flatMap(([k, x]) => plainStrings(x, at ? `${at}.${k}` : k));
  return [];
}

/** The serialized inputs with every secret replaced by its value. */
export function unwrapSecrets(v: unknown): unknown {
  if (isWireSecret(v)) return unwrapSecrets(v.value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}
