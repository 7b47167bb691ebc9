import * as pulumi from "@pulumi/pulumi";
import { DeliverablePayload } from "../payload/secret-payloads";
import { ProvisionStep } from "../payload/types";
import { RemoteCommand, RemoteFile, SshConnectionArgs } from "../targets/ssh/resources";
import { backInRotation, drainStep, payloadDigest, WebRollout } from "./rollout";

export interface SshHostArgs {
  payload: DeliverablePayload;
  privateKey: pulumi.Input<string>;
  /** A web server changed in a rolling update: drained before, health-gated and put back after. */
  rollout?: WebRollout;
}

const ROLE_TYPE = {
  balancer: "drupal-cluster:ssh:BalancerHost",
  web: "drupal-cluster:ssh:WebServer",
  data: "drupal-cluster:ssh:DataServer",
} as const;

/**
 * One existing Debian host, provisioned over SSH in a fixed order: packages,
 * files, configuration steps, services, then steps that need the services.
 * A changed file reruns only what watches it, and reloads only its service
 * (or restarts it, for a file the service reads only when it starts).
 */
export class SshHost extends pulumi.ComponentResource {
  readonly name: string;
  readonly address: string;
  /** The last resources of this host: what a dependent host waits for. */
  readonly ready: pulumi.Resource[];
  private readonly runSteps: (steps: ProvisionStep[], after: pulumi.Resource[]) => pulumi.Resource[];
  private readonly payload: DeliverablePayload;

  constructor(args: SshHostArgs, opts?: pulumi.ComponentResourceOptions) {
    const { layout } = args.payload;
    const host = layout.host;
    super(ROLE_TYPE[host.role], host.name, {}, opts);
    if (!host.ssh) throw new Error(`host ${host.name}: no ssh endpoint in the model`);
    this.name = host.name;
    this.address = host.clusterAddress;

    const connection: SshConnectionArgs = { ...host.ssh, privateKey: args.privateKey };
    const child = { parent: this };
    const p = args.payload;
    const digest = args.rollout ? payloadDigest(p) : "";
    const drained = args.rollout ? [drainStep(host.name, args.rollout, digest, child)] : [];

    const install = new RemoteCommand(
      `${host.name}-install`,
      {
        connection,
        create: [
          "export DEBIAN_FRONTEND=noninteractive",
          "apt-get update -q",
          `apt-get install -y -q --no-install-recommends ${layout.packages.join(" ")}`,
          ...layout.prepare.map((s) => s.run),
        ].join("\n"),
        triggers: [layout.packages.join(" "), ...layout.prepare.map((s) => s.run)],
      },
      { ...child, dependsOn: drained },
    );

    const files = layout.files.map(
      (f) =>
        new RemoteFile(
          `${host.name}:${f.path}`,
          { connection, path: f.path, content: p.content(f.path), mode: f.mode, owner: f.owner },
          { ...child, dependsOn: [install] },
        ),
    );

    const runSteps = (steps: ProvisionStep[], after: pulumi.Resource[]): pulumi.Resource[] => {
      let prev = after;
      for (const s of steps) {
        prev = [
          new RemoteCommand(
            `${host.name}-${s.name}`,
            { connection, create: s.run, triggers: [s.run, p.digest(s.watch)], ...(s.check ? { check: s.check } : {}) },
            { ...child, dependsOn: prev },
          ),
        ];
      }
      return prev;
    };
    this.runSteps = runSteps;
    this.payload = p;

    const configured = runSteps(layout.configure, [install, ...files]);
    // One after the other, in the payload's order: what comes later may use what
    // came before (keepalived tracks the engine, cron calls through the balancer).
    const services: RemoteCommand[] = [];
    for (const svc of layout.services) {
      services.push(
        new RemoteCommand(
          `${host.name}-service-${svc.name}`,
          {
            connection,
            create: svc.start,
            update: svc.reload,
            delete: svc.stop,
            check: svc.status,
            triggers: [p.digest(svc.watch)],
            ...(svc.restart ? { restart: svc.restart, restartTriggers: [p.digest(svc.restartWatch ?? [])] } : {}),
          },
          { ...child, dependsOn: services.length ? [services[services.length - 1]] : configured },
        ),
      );
    }
    const done = runSteps(layout.afterStart, services.length ? [services[services.length - 1]] : configured);
    this.ready = args.rollout ? [backInRotation(host.name, args.rollout, connection, digest, { ...child, dependsOn: done })] : done;
    this.registerOutputs({ address: this.address });
  }

  /** The payload's afterBalancers steps, after `balancers` (the program hands in the last balancer's ready). */
  afterBalancers(balancers: pulumi.Resource[]): pulumi.Resource[] {
    return this.runSteps(this.payload.layout.afterBalancers ?? [], balancers);
  }
}
