/**
 * The provider plugin's package name and version: the program asks the engine
 * for exactly this version, and scripts/build-provider.ts installs it.
 */
import { version } from "../../../package.json";

export const PROVIDER_PACKAGE = "drupal-cluster";
export const PROVIDER_VERSION: string = version;
