import * as pulumi from "@pulumi/pulumi";
import { SshHost } from "./components/ssh-host";
import { loadStack } from "./config/load";
import { ClusterModel } from "./model/types";
import { readProxyNodeArtifact } from "./payload/artifacts";
import { DeliverablePayload, deliverablePayloads } from "./payload/secret-payloads";
import { ProxyNodeArtifact } from "./payload/balancer";
import { DockerHost, dockerNetwork, frontForwarder } from "./targets/docker/cluster";
import { SshConnectionArgs } from "./targets/ssh/resources";

/** One balancer's own pages, when there are two of them. */
export interface BalancerOutputs {
  address: string;
  balancerManagerUrl: string | undefined;
  proxyNodeManagerUrl: string | undefined;
}

export interface ClusterOutputs {
  target: string;
  /** Where clients go: with a balancer pair, the virtual address (or what stands for it). */
  balancerUrl: string | undefined;
  /** With HTTPS at the balancer (balancer.tls): its https:// origin. */
  balancerHttpsUrl?: string;
  balancerManagerUrl: string | undefined;
  proxyNodeManagerUrl: string | undefined;
  /** With a balancer pair: the address keepalived moves, and each balancer's own managers. */
  virtualAddress?: string;
  balancers?: Record<string, BalancerOutputs>;
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
      .all([secrets.dbPassword, secrets.hashSalt, secrets.managerToken, secrets.cronKey, secrets.tlsPrivateKey])
      .apply(([dbPassword, hashSalt, managerToken, cronKey, tlsPrivateKey]) => ({ dbPassword, hashSalt, managerToken, cronKey, tlsPrivateKey })),
    artifact ?? readProxyNodeArtifact(),
  );
  if (model.target === "ssh") deliverOverSsh(model, payloads, secrets.sshPrivateKey);
  else deliverToDocker(model, payloads);
  return outputs(model);
}

function byRole(payloads: DeliverablePayload[], role: string): DeliverablePayload[] {
  return payloads.filter((p) => p.layout.host.role === role);
}

/**
 * Web servers wait for the database, the balancer for the web servers, a second
 * balancer for the first. rollout rolling: the web servers in batches, each
 * batch once the one before is back in rotation (a failed health gate stops
 * there); parallel: all at once.
 */
function deliverOverSsh(model: ClusterModel, payloads: DeliverablePayload[], privateKey: pulumi.Output<string>): void {
  const [data] = byRole(payloads, "data").map((payload) => new SshHost({ payload, privateKey }));
  const balancer: SshConnectionArgs = { ...model.balancer.host.ssh!, privateKey };
  const { mode, batch } = model.rollout;
  const web: SshHost[] = [];
  byRole(payloads, "web").forEach((payload, i) => {
    if (mode === "parallel") {
      web.push(new SshHost({ payload, privateKey }, { dependsOn: data.ready }));
      return;
    }
    const member = model.web.find((w) => w.host.name === payload.layout.host.name)!;
    const first = Math.floor(i / batch) * batch;
    const previousBatch = web.slice(Math.max(0, first - batch), first);
    web.push(
      new SshHost({ payload, privateKey, rollout: { model, member, balancer } }, { dependsOn: [...data.ready, ...previousBatch.flatMap((w) => w.ready)] }),
    );
  });
  // A pair's balancers one after the other: changed at the same moment, both
  // could restart keepalived at once and leave the address on neither.
  let before = web.flatMap((w) => w.ready);
  for (const payload of byRole(payloads, "balancer")) before = new SshHost({ payload, privateKey }, { dependsOn: before }).ready;
}

function deliverToDocker(model: ClusterModel, payloads: DeliverablePayload[]): void {
  const d = model.docker!;
  const { network, filesVolume, databaseVolume } = dockerNetwork(model, d);
  const host = (payload: DeliverablePayload, dependsOn: pulumi.Resource[]): DockerHost =>
    new DockerHost({ model, docker: d, payload, network, filesVolume, databaseVolume }, { dependsOn });
  const [data] = byRole(payloads, "data").map((p) => host(p, []));
  const web = byRole(payloads, "web").map((p) => host(p, [data.container]));
  // As over ssh, a pair's balancers one after the other (a changed payload replaces a container).
  let before: pulumi.Resource[] = web.map((w) => w.container);
  for (const p of byRole(payloads, "balancer")) before = [host(p, before).container];
  if (model.balancer.redundancy) frontForwarder(model, d, network);
}

function outputs(model: ClusterModel): ClusterOutputs {
  const b = model.balancer;
  const balancerUrl = b.publicUrl;
  // Apache's balancer-manager is served on a balancer's own HTTP port: through the
  // virtual address it would be whichever balancer holds it, so each has its own.
  const apacheManager = (url: string | undefined): string | undefined => (url ? `${url}/balancer-manager` : undefined);
  const own = (url: string | undefined, proxyNodeManagerUrl: string | undefined, address: string): BalancerOutputs => ({
    address,
    balancerManagerUrl: b.engine === "apache" ? apacheManager(url) : proxyNodeManagerUrl,
    proxyNodeManagerUrl,
  });
  const pair = b.redundancy
    ? {
        virtualAddress: b.redundancy.virtualAddress,
        balancers: {
          [b.host.name]: own(b.host.url, b.managerUrl, b.host.clusterAddress),
          [b.redundancy.peer.name]: own(b.redundancy.peer.url, b.redundancy.peerManagerUrl, b.redundancy.peer.clusterAddress),
        },
      }
    : {};
  return {
    target: model.target,
    balancerUrl,
    ...(b.tls ? { balancerHttpsUrl: b.tls.url } : {}),
    // With HTTPS the manager's page is reached over it: plain HTTP redirects there.
    balancerManagerUrl: b.engine === "apache" ? apacheManager(b.tls?.url ?? b.host.url) : b.managerUrl,
    proxyNodeManagerUrl: b.managerUrl,
    ...pair,
    webUrls: Object.fromEntries(model.web.map((w) => [w.host.name, w.host.url])),
    dataAddress: `${model.data.host.clusterAddress}:${model.data.port}`,
    stickyCookie: `${model.sticky.cookieName}=${model.sticky.valuePrefix}<route>`,
  };
}
