/**
 * Entry point of the plugin binary. scripts/build-provider.ts bundles this file
 * with its dependencies into one script, so the installed plugin needs nothing
 * of the checkout it was built from.
 */
import { main } from "@pulumi/pulumi/provider";
import { DeliveryProvider } from "./provider";

declare const PROVIDER_VERSION: string;

void main(new DeliveryProvider(PROVIDER_VERSION), process.argv.slice(2));
