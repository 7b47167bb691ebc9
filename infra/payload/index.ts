import { ClusterModel } from "../model/types";
import { balancerPayload, ProxyNodeArtifacts } from "./balancer";
import { dataPayload } from "./data";
import { bootFiles } from "./common";
import { HostPayload, PayloadSecrets } from "./types";
import { webPayload } from "./web";

export { ProxyNodeArtifacts } from "./balancer";
export * from "./types";

/** Every host's payload, in the order they must come up: data, web servers, balancer. */
export function buildPayloads(model: ClusterModel, secrets: PayloadSecrets, artifacts: ProxyNodeArtifacts): HostPayload[] {
  return [
    dataPayload(model, secrets),
    ...model.web.map((w) => webPayload(model, w, secrets)),
    balancerPayload(model, secrets, artifacts),
  ].map((p) => ({ ...p, files: [...p.files, ...bootFiles(p.services)] }));
}
