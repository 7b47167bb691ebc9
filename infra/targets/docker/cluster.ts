import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ClusterModel, DockerModel } from "../../model/types";
import { sh } from "../../payload/common";
import { DeliverablePayload } from "../../payload/secret-payloads";
import { PROVISION_PATH, provisionScript, READY_PATH } from "./provision";

const ROLE_TYPE = {
  balancer: "drupal-cluster:docker:BalancerHost",
  web: "drupal-cluster:docker:WebServer",
  data: "drupal-cluster:docker:DataServer",
} as const;

export interface DockerHostArgs {
  model: ClusterModel;
  docker: DockerModel;
  payload: DeliverablePayload;
  network: docker.Network;
  filesVolume: docker.Volume;
  /** MariaDB's data folder: outlives the data server's container, which a payload change replaces. */
  databaseVolume: docker.Volume;
}

/**
 * One host as a container from the Debian base image: its payload is uploaded and
 * its entrypoint provisions it, so a changed payload replaces the container.
 */
export class DockerHost extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(args: DockerHostArgs, opts?: pulumi.ComponentResourceOptions) {
    const { layout } = args.payload;
    const host = layout.host;
    super(ROLE_TYPE[host.role], host.name, {}, opts);
    const { model, docker: d } = args;

    const provision = provisionScript(model, layout);

    const ports: docker.types.input.ContainerPort[] = [];
    const pair = model.balancer.redundancy;
    if (host.role === "balancer") {
      // With a pair, clients reach the virtual address through the front (frontForwarder).
      if (!pair) ports.push({ internal: model.balancer.httpPort, external: d.httpPort, ip: d.bindAddress });
      const managerPort = pair && host === pair.peer ? d.peerManagerPort : d.managerPort;
      ports.push({ internal: model.balancer.managerPort, external: managerPort, ip: d.bindAddress });
    }
    if (host.role === "web" && d.webDirectPortBase !== undefined) {
      const n = model.web.findIndex((w) => w.host.name === host.name) + 1;
      ports.push({ internal: 80, external: d.webDirectPortBase + n, ip: d.bindAddress });
    }

    this.container = new docker.Container(
      host.name,
      {
        name: `${model.project}-${model.stack}-${host.name}`,
        hostname: host.name,
        image: d.image,
        command: ["/bin/bash", PROVISION_PATH],
        networksAdvanced: [{ name: args.network.name, aliases: [host.name], ipv4Address: host.clusterAddress }],
        ports,
        // keepalived adds and removes the virtual address on the balancers' interface.
        ...(host.role === "balancer" && pair ? { capabilities: { adds: ["NET_ADMIN"] } } : {}),
        uploads: [
          { file: PROVISION_PATH, content: provision, permissions: "0755" },
          ...layout.files.map((f) => ({
            file: f.path,
            content: args.payload.content(f.path),
            permissions: f.mode,
          })),
        ],
        volumes:
          host.role === "web"
            ? [{ volumeName: args.filesVolume.name, containerPath: model.files.publicPath }]
            : host.role === "data"
              ? [{ volumeName: args.databaseVolume.name, containerPath: MARIADB_DATADIR }]
              : [],
        labels: [
          { label: "drupal-cluster.stack", value: model.stack },
          { label: "drupal-cluster.host", value: host.name },
        ],
        restart: "unless-stopped",
        mustRun: true,
        // Healthy only once provisioned, and Pulumi waits for it: the next tier
        // (web after data, balancer after web) starts on a working host.
        healthcheck: { tests: ["CMD", "test", "-f", READY_PATH], interval: "5s", timeout: "3s", retries: 3, startPeriod: "15m" },
        wait: true,
        waitTimeout: 900,
      },
      { parent: this, ...(opts?.dependsOn ? { dependsOn: opts.dependsOn } : {}) },
    );
    this.registerOutputs({ container: this.container.name });
  }
}

/**
 * The clients' side of a balancer pair on docker: a published port can only
 * lead to one container, and the virtual address moves between two, so a small
 * forwarder on the cluster network stands for the clients' network and sends
 * each connection to the virtual address, wherever it is at the time, as a
 * plain TCP client there (no retries of its own).
 */
export function frontForwarder(model: ClusterModel, d: DockerModel, network: docker.Network, parent?: pulumi.Resource): docker.Container {
  const pair = model.balancer.redundancy!;
  const port = model.balancer.httpPort;
  const prefix = d.subnet.split("/")[0].replace(/\.0$/, "");
  const run =
    "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends socat && " +
    sh`exec socat ${`TCP-LISTEN:${port},fork,reuseaddr`} ${`TCP:${pair.virtualAddress}:${port},connect-timeout=30`}`;
  return new docker.Container(
    "front",
    {
      name: `${model.project}-${model.stack}-front`,
      hostname: "front",
      image: d.image,
      command: ["/bin/bash", "-c", run],
      networksAdvanced: [{ name: network.name, aliases: ["front"], ipv4Address: `${prefix}.3` }],
      ports: [{ internal: port, external: d.httpPort, ip: d.bindAddress }],
      labels: [
        { label: "drupal-cluster.stack", value: model.stack },
        { label: "drupal-cluster.host", value: "front" },
      ],
      restart: "unless-stopped",
      mustRun: true,
    },
    { parent },
  );
}

/** Debian's MariaDB keeps its databases here; an existing one is kept by the package's install. */
export const MARIADB_DATADIR = "/var/lib/mysql";

export function dockerNetwork(
  model: ClusterModel,
  d: DockerModel,
  parent?: pulumi.Resource,
): { network: docker.Network; filesVolume: docker.Volume; databaseVolume: docker.Volume } {
  const labels = [{ label: "drupal-cluster.stack", value: model.stack }];
  const network = new docker.Network("network", { name: d.network, ipamConfigs: [{ subnet: d.subnet }], labels }, { parent });
  const filesVolume = new docker.Volume("public-files", { name: `${d.network}-files`, labels }, { parent });
  const databaseVolume = new docker.Volume("database", { name: `${d.network}-database`, labels }, { parent });
  return { network, filesVolume, databaseVolume };
}
