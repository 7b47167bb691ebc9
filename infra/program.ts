import * as pulumi from "@pulumi/pulumi";
import { SshHost } from "./components/ssh-host";
import { loadStack } from "./config/load";
import { ClusterModel } from "./model/types";
import { readProxyNodeArtifact } from "./payload/artifacts";
import { DeliverablePayload, deliverablePayloads } from "./payload/secret-payloads";
import { ProxyNodeArtifact } from "./payload/balancer";
import { DockerHost, dockerNetwork } from "./targets/docker/cluster";

export interface ClusterOutputs {
  target: string;
  balancerUrl: string | undefined;
  balancerManagerUrl: string | undefined;
  proxyNodeManagerUrl: string | undefined;
  webUrls: Record<string, string | undefined>;
  dataAddress: string;
  stickyCookie: string;
}

/**
 * The whole program: stack config -> validated model -> per-host payloads -> a
 * target that delivers them. Everything is validated before the first resource.
 */
export function clusterProgram(artifact?: ProxyNodeArtifact): ClusterOutputs {
  const { model, secrets } = loadStack();
  const payloads = deliverablePayloads(
    model,
    pulumi
      .all([secrets.dbPassword, secrets.hashSalt, secrets.managerToken, secrets.cronKey])
      .apply(([dbPassword, hashSalt, managerToken, cronKey]) => ({ dbPassword, hashSalt, managerToken, cronKey })),
    artifact ?? readProxyNodeArtifact(),
  );
  if (model.target === "ssh") deliverOverSsh(payloads, secrets.sshPrivateKey);
  else deliverToDocker(model, payloads);
  return outputs(model);
}

function byRole(payloads: DeliverablePayload[], role: string): DeliverablePayload[] {
  return payloads.filter((p) => p.layout.host.role === role);
}

/** Web servers wait for the database, the balancer for the web servers. */
function deliverOverSsh(payloads: DeliverablePayload[], privateKey: pulumi.Output<string>): void {
  const [data] = byRole(payloads, "data").map((payload) => new SshHost({ payload, privateKey }));
  const web = byRole(payloads, "web").map((payload) => new SshHost({ payload, privateKey }, { dependsOn: data.ready }));
  byRole(payloads, "balancer").map((payload) => new SshHost({ payload, privateKey }, { dependsOn: web.flatMap((w) => w.ready) }));
}

function deliverToDocker(model: ClusterModel, payloads: DeliverablePayload[]): void {
  const d = model.docker!;
  const { network, filesVolume, databaseVolume } = dockerNetwork(model, d);
  const host = (payload: DeliverablePayload, dependsOn: pulumi.Resource[]): DockerHost =>
    new DockerHost({ model, docker: d, payload, network, filesVolume, databaseVolume }, { dependsOn });
  const [data] = byRole(payloads, "data").map((p) => host(p, []));
  const web = byRole(payloads, "web").map((p) => host(p, [data.container]));
  byRole(payloads, "balancer").map((p) =>
    host(
      p,
      web.map((w) => w.container),
    ),
  );
}

function outputs(model: ClusterModel): ClusterOutputs {
  const b = model.balancer;
  const balancerUrl = b.host.url;
  return {
    target: model.target,
    balancerUrl,
    balancerManagerUrl: b.engine === "apache" ? balancerUrl && `${balancerUrl}/balancer-manager` : b.managerUrl,
    proxyNodeManagerUrl: b.managerUrl,
    webUrls: Object.fromEntries(model.web.map((w) => [w.host.name, w.host.url])),
    dataAddress: `${model.data.host.clusterAddress}:${model.data.port}`,
    stickyCookie: `${model.sticky.cookieName}=${model.sticky.valuePrefix}<route>`,
  };
}
