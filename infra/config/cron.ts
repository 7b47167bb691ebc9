/**
 * The `cron` settings: how often Drupal's cron runs for the whole cluster
 * (infra/payload/cron.ts), and the rule for the `cronKey` secret it is called with.
 */
import { CronModel } from "../model/types";
import { ConfigError } from "./errors";
import { ConfigReader } from "./reader";

/**
 * Seconds between two runs. The floor: a run is an HTTP request through the
 * balancer that may wait a connect deadline per web server that is gone, so a
 * shorter period could come due while the last run is still going. The ceiling:
 * a day; Drupal's own cron jobs expect to run at least that often.
 */
export const CRON_PERIOD = { min: 10, max: 86_400, fallback: 300 } as const;

/**
 * The key goes into Drupal's cron URL (`/cron/<key>`) and a curl config line, so
 * only characters that need no escaping in either; at least 16 of them, so it is
 * not guessed. Drupal's own generated keys (base64url) pass.
 */
export const CRON_KEY = /^[A-Za-z0-9_-]{16,128}$/;
export const CRON_KEY_RULE = "16 to 128 letters, digits, - and _";

export function readCron(c: ConfigReader): CronModel {
  c.onlyKeys(["periodSeconds"]);
  try {
    return { periodSeconds: c.integer("periodSeconds", CRON_PERIOD, CRON_PERIOD.fallback) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new ConfigError(
      e.key,
      `${e.problem}: the seconds between two runs of Drupal's cron for the whole cluster [${CRON_PERIOD.fallback}]; ` +
        `not below ${CRON_PERIOD.min}, or a run could still be going when the next is due, and at most ${CRON_PERIOD.max} (a day)`,
    );
  }
}
