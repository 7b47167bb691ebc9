/**
 * The `rollout` settings: how `up` changes the web servers. A block of its own
 * because `web` is the list of web servers. Here only `drainSeconds`, which a
 * scale-in uses too: how long a removed web server's sticky clients may keep
 * going on it before the balancer drops it. (The rolling-update work adds the
 * rest of the block, with the same key and meaning.)
 */
import { RolloutModel, Target } from "../model/types";
import { ConfigError } from "./errors";
import { ConfigReader } from "./reader";

/** A sticky client's session lives in MariaDB, so waiting longer than an hour for it only delays the change. */
export const DRAIN_SECONDS = { min: 0, max: 3600, fallback: 30 } as const;

export function readRollout(r: ConfigReader, target: Target): RolloutModel {
  r.onlyKeys(["drainSeconds"]);
  // The docker target replaces a changed host's container; nothing there drains it.
  if (target === "docker" && r.names().length > 0) {
    throw new ConfigError(r.key, "is only used with target ssh (the docker target replaces a changed web server's container); remove it");
  }
  return { drainSeconds: r.integer("drainSeconds", DRAIN_SECONDS, DRAIN_SECONDS.fallback) };
}
