/**
 * Moves a stack made with the ssh target's former dynamic resources
 * (`pulumi-nodejs:dynamic/drupal-cluster:RemoteFile` and `...:RemoteCommand`,
 * which kept their code and this checkout's paths in state) to the
 * drupal-cluster provider plugin, without touching any file on the hosts:
 *
 *   npm run migrate -- --stack <stack>      then: npm run up
 *
 * The state is rewritten (types, URNs, provider, the serialized code dropped)
 * and each applied step gets its marker on its host, so the first refresh
 * finds everything in place. A stack with nothing to migrate is left alone.
 */
import { randomUUID } from "node:crypto";
import { Deployment } from "@pulumi/pulumi/automation";
import { runRemote, shellQuote, SshConnection } from "../infra/targets/ssh/remote-exec";
import { PROVIDER_PACKAGE, PROVIDER_VERSION } from "../infra/targets/ssh/plugin";
import { MARKER_DIR, markerFile } from "../infra/targets/ssh/markers";
import { allHosts, ClusterModel } from "../infra/model/types";

const OLD_TYPE = "pulumi-nodejs:dynamic/drupal-cluster:Remote";
const NEW_TYPE = "drupal-cluster:ssh:Remote";
const OLD_PROVIDER_TYPE = "pulumi:providers:pulumi-nodejs";

interface StateResource {
  urn: string;
  type: string;
  id?: string;
  custom?: boolean;
  parent?: string;
  provider?: string;
  dependencies?: string[];
  propertyDependencies?: Record<string, string[]>;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  [k: string]: unknown;
}

/** A step to mark on its host: what its marker must hold, and where it lives. */
export interface StepMark {
  name: string;
  id: string;
  host: string;
  port: number;
}

const renamed = (s: string): string => s.split(OLD_TYPE).join(NEW_TYPE);

/**
 * The deployment with every former dynamic resource moved to our provider,
 * and the steps whose markers must be written; null when there is nothing
 * to migrate. Pure: the caller imports the result.
 */
export function migrateDeployment(
  deployment: Deployment,
  stack: string,
  project: string,
  /** Each host's key by "host:port", from the stack config: the former resources had none. */
  hostKeys: ReadonlyMap<string, string>,
): { deployment: Deployment; migrated: number; steps: StepMark[] } | null {
  const d = deployment.deployment as { resources?: StateResource[] };
  const resources = d.resources ?? [];
  if (!resources.some((r) => r.type.startsWith(OLD_TYPE))) return null;
  const providerUrn = `urn:pulumi:${stack}::${project}::pulumi:providers:${PROVIDER_PACKAGE}::default_${PROVIDER_VERSION.replace(/\./g, "_")}`;
  const providerRef = `${providerUrn}::${randomUUID()}`;
  const steps: StepMark[] = [];
  let migrated = 0;
  const out: StateResource[] = [];
  for (const r of resources) {
    if (r.type === OLD_PROVIDER_TYPE) continue;
    const old = r.type.startsWith(OLD_TYPE);
    const next: StateResource = {
      ...r,
      urn: renamed(r.urn),
      type: renamed(r.type),
      ...(r.parent ? { parent: renamed(r.parent) } : {}),
      ...(r.dependencies ? { dependencies: r.dependencies.map(renamed) } : {}),
      ...(r.propertyDependencies
        ? { propertyDependencies: Object.fromEntries(Object.entries(r.propertyDependencies).map(([k, v]) => [k, v.map(renamed)])) }
        : {}),
    };
    if (old) {
      migrated++;
      const { __provider: _in, ...inputs } = r.inputs ?? {};
      const { __provider: _out, ...outputs } = r.outputs ?? {};
      // The provider refuses a connection without a host key, and reads and deletes use the state's.
      for (const props of [inputs, outputs]) {
        const c = props.connection as { host?: unknown; port?: unknown } | undefined;
        const key = c ? hostKeys.get(`${String(c.host)}:${String(c.port)}`) : undefined;
        if (c === undefined) continue;
        if (key === undefined)
          throw new Error(`${next.urn}: no host key in the stack's config for ${String(c.host)}:${String(c.port)}; set ssh.hostKey for that host first`);
        props.connection = { ...c, hostKey: key };
      }
      next.provider = providerRef;
      next.inputs = inputs;
      next.outputs = next.type.endsWith("RemoteCommand") ? { check: "", ...outputs, applied: true, found: "" } : { ...outputs, found: "" };
      if (next.type.endsWith("RemoteCommand")) {
        const c = outputs.connection as { host?: unknown; port?: unknown } | undefined;
        if (typeof c?.host === "string" && typeof c.port === "number" && r.id) {
          steps.push({ name: next.urn.slice(next.urn.lastIndexOf("::") + 2), id: r.id, host: c.host, port: c.port });
        }
      }
    }
    out.push(next);
    // The provider goes right after the stack, before anything that uses it.
    if (r.type === "pulumi:pulumi:Stack") {
      out.push({
        urn: providerUrn,
        custom: true,
        id: providerRef.slice(providerUrn.length + 2),
        type: `pulumi:providers:${PROVIDER_PACKAGE}`,
        inputs: { version: PROVIDER_VERSION },
        outputs: { version: PROVIDER_VERSION },
      });
    }
  }
  if (!out.some((r) => r.urn === providerUrn)) throw new Error("the state has no stack resource to put the provider after");
  return { deployment: { ...deployment, deployment: { ...d, resources: out } }, migrated, steps };
}

/** Writes each migrated step's marker on its host, the way the provider would have. */
export async function markSteps(model: ClusterModel, privateKey: string, steps: StepMark[]): Promise<void> {
  const hosts = allHosts(model);
  const byHost = new Map<string, StepMark[]>();
  for (const s of steps) byHost.set(`${s.host}:${s.port}`, [...(byHost.get(`${s.host}:${s.port}`) ?? []), s]);
  for (const [endpoint, marks] of byHost) {
    const h = hosts.find((x) => x.ssh && `${x.ssh.host}:${x.ssh.port}` === endpoint);
    if (!h?.ssh) throw new Error(`the state names a host at ${endpoint} that the stack's config does not have; migrate before changing hosts`);
    const conn: SshConnection = { ...h.ssh, privateKey };
    const script = [`mkdir -p ${MARKER_DIR}`, ...marks.map((m) => `printf '%s' ${shellQuote(m.id)} > ${shellQuote(markerFile(m.name))}`)].join("\n");
    await runRemote(conn, `marking ${marks.length} applied step(s)`, script);
  }
}
