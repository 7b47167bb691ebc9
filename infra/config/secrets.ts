/**
 * Rules of the programs that read the secrets, checked on the plain value while
 * the stack config is read, so a secret its consumer would refuse stops the
 * program before the first host is touched. Messages never show the value.
 */
import { secretAdvice } from "./advice";
import { CRON_KEY, CRON_KEY_RULE } from "./cron";
import { ConfigError } from "./errors";
import type { SecretKey } from "./validate";

interface SecretRule {
  ok: (value: string) => boolean;
  accepted: string;
}

const RULES: Partial<Record<SecretKey, SecretRule>> = {
  // proxy-node/src/config.ts refuses any other token, and it starts last, after data and web.
  managerToken: { ok: (v) => v.length >= 8 && /^[\x21-\x7e]+$/.test(v), accepted: "at least 8 printable ASCII characters without spaces" },
  // An empty password would give the web servers' database account none at all.
  dbPassword: { ok: (v) => v.length > 0, accepted: "a non-empty password" },
  // Drupal refuses to start with an empty hash_salt.
  hashSalt: { ok: (v) => v.length > 0, accepted: "a non-empty value" },
  // It lands in Drupal's cron URL and a curl config line (infra/config/cron.ts).
  cronKey: { ok: (v) => CRON_KEY.test(v), accepted: CRON_KEY_RULE },
};

export function checkSecret(project: string, stack: string, key: SecretKey, value: string): void {
  const rule = RULES[key];
  if (rule && !rule.ok(value)) {
    throw new ConfigError(
      `${project}:${key}`,
      `the secret is not accepted (its value is not shown); use ${rule.accepted}, for example: ${secretAdvice(stack, key)}`,
    );
  }
}
