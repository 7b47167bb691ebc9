import { ConfigError } from "./errors";

/**
 * Typed, path-aware access to one branch of untyped stack config. Every failure
 * becomes a ConfigError naming the full key, e.g. `drupal-cluster:hosts.web[1].ssh.port`.
 */
export class ConfigReader {
  constructor(
    private readonly value: unknown,
    readonly key: string,
  ) {}

  static root(project: string, values: Record<string, unknown>): ConfigReader {
    return new ConfigReader(values, `${project}:`);
  }

  private childKey(name: string): string {
    return this.key.endsWith(":") ? `${this.key}${name}` : `${this.key}.${name}`;
  }

  private object(): Record<string, unknown> {
    if (this.value === undefined || this.value === null) return {};
    if (typeof this.value !== "object" || Array.isArray(this.value)) {
      throw new ConfigError(this.key, `expected an object, got ${describe(this.value)}`);
    }
    return this.value as Record<string, unknown>;
  }

  has(name: string): boolean {
    const v = this.object()[name];
    return v !== undefined && v !== null;
  }

  /** The names set in this branch (for maps keyed by host name). */
  names(): string[] {
    return Object.keys(this.object());
  }

  /** The value as the stack file has it, for settings with a grammar of their own. */
  raw(name: string): unknown {
    return this.object()[name];
  }

  child(name: string): ConfigReader {
    return new ConfigReader(this.object()[name], this.childKey(name));
  }

  /** Rejects keys we do not know: a typo must not silently fall back to a default. */
  onlyKeys(allowed: readonly string[]): void {
    for (const k of Object.keys(this.object())) {
      if (!allowed.includes(k)) {
        throw new ConfigError(this.childKey(k), `unknown setting; accepted here: ${allowed.join(", ")}`);
      }
    }
  }

  list(name: string): ConfigReader[] {
    const key = this.childKey(name);
    const v = this.object()[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new ConfigError(key, `expected a list, got ${describe(v)}`);
    return v.map((item, i) => new ConfigReader(item, `${key}[${i}]`));
  }

  string(name: string, fallback?: string): string {
    const key = this.childKey(name);
    const v = this.object()[name];
    if (v === undefined || v === null || v === "") {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(key, "is required and missing");
    }
    if (typeof v !== "string") throw new ConfigError(key, `expected text, got ${describe(v)}`);
    return v;
  }

  optionalString(name: string): string | undefined {
    return this.has(name) ? this.string(name) : undefined;
  }

  strings(name: string, fallback: readonly string[]): string[] {
    const items = this.list(name);
    if (!this.has(name)) return [...fallback];
    return items.map((r) => {
      if (typeof r.value !== "string" || r.value === "") {
        throw new ConfigError(r.key, `expected text, got ${describe(r.value)}`);
      }
      return r.value;
    });
  }

  oneOf<T extends string>(name: string, accepted: readonly T[], fallback?: T): T {
    const v = this.string(name, fallback);
    if (!(accepted as readonly string[]).includes(v)) {
      throw new ConfigError(this.childKey(name), `"${v}" is not accepted; use one of: ${accepted.join(", ")}`);
    }
    return v as T;
  }

  integer(name: string, range: { min: number; max: number }, fallback?: number): number {
    const key = this.childKey(name);
    const raw = this.object()[name];
    if (raw === undefined || raw === null || raw === "") {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(key, "is required and missing");
    }
    // Pulumi config values set on the command line arrive as strings.
    const n = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof n !== "number" || !Number.isInteger(n) || n < range.min || n > range.max) {
      throw new ConfigError(key, `expected a whole number from ${range.min} to ${range.max}, got ${describe(raw)}`);
    }
    return n;
  }

  /** A whole number in range, or one of a few words such as "auto"; missing gives the fallback. */
  integerOr<T extends string>(name: string, range: { min: number; max: number }, words: readonly T[], fallback: number | T): number | T {
    const raw = this.object()[name];
    if (raw === undefined || raw === null || raw === "") return fallback;
    if (typeof raw === "string" && (words as readonly string[]).includes(raw)) return raw as T;
    // Pulumi config values set on the command line arrive as strings.
    const n = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof n !== "number" || !Number.isInteger(n) || n < range.min || n > range.max) {
      const accepted = words.map((w) => `"${w}"`).join(", ");
      throw new ConfigError(this.childKey(name), `expected a whole number from ${range.min} to ${range.max} or ${accepted}, got ${describe(raw)}`);
    }
    return n;
  }

  port(name: string, fallback?: number): number {
    return this.integer(name, { min: 1, max: 65535 }, fallback);
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.object()[name];
    if (raw === undefined || raw === null) return fallback;
    if (raw === true || raw === "true") return true;
    if (raw === false || raw === "false") return false;
    throw new ConfigError(this.childKey(name), `expected true or false, got ${describe(raw)}`);
  }
}

function describe(v: unknown): string {
  if (typeof v === "string") return `"${v}"`;
  if (Array.isArray(v)) return "a list";
  if (v === null) return "nothing";
  if (typeof v === "object") return "an object";
  return String(v);
}
