// Entry point for `pulumi up` with the nodejs language host (Pulumi.yaml: main infra/).
// scripts/ drive the same program through the Automation API.
import { clusterProgram } from "./program";

const out = clusterProgram();
export const target = out.target;
export const balancerUrl = out.balancerUrl;
export const balancerManagerUrl = out.balancerManagerUrl;
export const proxyNodeManagerUrl = out.proxyNodeManagerUrl;
export const webUrls = out.webUrls;
export const dataAddress = out.dataAddress;
export const stickyCookie = out.stickyCookie;
