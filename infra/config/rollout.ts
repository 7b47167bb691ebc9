/**
 * The `rollout` settings: how `up` changes the web servers (infra/components/rollout.ts).
 * A block of its own because `web` is the list of web servers.
 */
import { RolloutModel, Target } from "../model/types";
import { ConfigError } from "./errors";
import { ConfigReader } from "./reader";

export const ROLLOUT_MODES = ["rolling", "parallel"] as const;
/** A sticky client's session lives in MariaDB, so waiting longer than an hour for it only delays the change. */
export const DRAIN_SECONDS = { min: 0, max: 3600, fallback: 30 } as const;
/** Long enough for a cold Apache with PHP on a slow host; past that the change itself is wrong. */
export const GATE_SECONDS = { min: 5, max: 600, fallback: 60 } as const;

export function readRollout(r: ConfigReader, target: Target, webCount: number): RolloutModel {
  r.onlyKeys(["mode", "batch", "drainSeconds", "gateSeconds"]);
  // The docker target replaces a changed host's container; nothing there drains it.
  if (target === "docker" && r.names().length > 0) {
    throw new ConfigError(r.key, "is only used with target ssh (the docker target replaces a changed web server's container); remove it");
  }
  const mode = r.oneOf("mode", ROLLOUT_MODES, "rolling");
  const batch = r.integer("batch", { min: 1, max: 200 }, 1);
  // All at once is what parallel is for: a batch that leaves no web server serving would be an outage.
  if (mode === "rolling" && webCount > 1 && batch >= webCount) {
    throw new ConfigError(
      `${r.key}.batch`,
      `${batch} would take all ${webCount} web servers out of rotation at once; use at most ${webCount - 1}, or mode parallel`,
    );
  }
  return {
    mode,
    batch,
    drainSeconds: r.integer("drainSeconds", DRAIN_SECONDS, DRAIN_SECONDS.fallback),
    gateSeconds: r.integer("gateSeconds", GATE_SECONDS, GATE_SECONDS.fallback),
  };
}
