import { balancerHosts, ClusterModel } from "../model/types";
import { balancerPayload, ProxyNodeArtifact } from "./balancer";
import { dataPayload } from "./data";
import { bootFiles } from "./common";
import { withCron } from "./cron";
import { HostPayload, PayloadSecrets } from "./types";
import { webPayload } from "./web";

export { ProxyNodeArtifact } from "./balancer";
export * from "./types";

/** Every host's payload, in the order they must come up: data, web servers, balancer(s). */
export function buildPayloads(model: ClusterModel, secrets: PayloadSecrets, artifact: ProxyNodeArtifact): HostPayload[] {
  return [
    dataPayload(model, secrets),
    ...model.web.map((w) => webPayload(model, w, secrets)),
    ...balancerHosts(model.balancer).map((h) => balancerPayload(model, h, secrets, artifact)),
  ]
    .map((p) => withCron(model, secrets, p))
    .map((p) => ({ ...p, files: [...p.files, ...bootFiles(p.services)] }));
}
