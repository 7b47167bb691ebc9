/**
 * The engine hands a provider that accepts secrets its secret values wrapped in
 * this sentinel object, and keeps a value secret in state only when the
 * provider returns it wrapped the same way.
 */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface SecretValue<T> {
  [SIG_KEY]: typeof SECRET_SIG;
  value: T;
}

export function secret<T>(value: T): SecretValue<T> {
  return { [SIG_KEY]: SECRET_SIG, value };
}

function isSecret(v: unknown): v is SecretValue<unknown> {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** The plain value, with every secret wrapper inside it removed. */
export function reveal(v: unknown): unknown {
  if (isSecret(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map(reveal);
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = reveal(x);
    return out;
  }
  return v;
}
