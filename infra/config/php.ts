/**
 * The `php` settings: PHP on the web servers (mod_php under Apache's prefork
 * MPM), written to an ini file and, for `workers`, an Apache conf file there
 * (infra/payload/web.ts). A size lands in a php.ini line, where `;` starts a
 * comment, `"`/`${...}` interpolate and `|`/`&`/`~`/`!` are operators: only
 * the units grammar below passes; the rest are whole numbers.
 */
import { PhpModel } from "../model/types";
import { ConfigError } from "./errors";
import { quote } from "./grammar";
import { ConfigReader } from "./reader";

/** A PHP size (php.ini's shorthand): digits and one optional K, M or G, no sign, no spaces. */
export const PHP_SIZE = /^[1-9][0-9]{0,12}[KMG]?$/;
export const PHP_SIZE_RULE = "digits and one of K, M or G (e.g. 256M)";

const KB = 1024;
const MB = 1024 * KB;
const GB = 1024 * MB;

/**
 * Bounds in bytes: wide, so that they keep out typos (256K for 256M, 256G)
 * rather than judge a host. -1 (no memory limit) is refused: one runaway
 * request could then take the host's memory from every other worker.
 */
export const PHP_SIZES = {
  memoryLimit: { min: 32 * MB, max: 16 * GB, fallback: "256M" },
  uploadMaxFilesize: { min: 1 * MB, max: 2 * GB, fallback: "32M" },
  postMaxSize: { min: 1 * MB, max: 2 * GB, fallback: "64M" },
} as const;

/** Seconds; 0 (no limit) is refused: a hung request would hold an Apache worker for ever. */
export const PHP_MAX_EXECUTION_TIME = { min: 1, max: 3600, fallback: 30 } as const;
/** OPcache's shared memory in MB: PHP refuses less than 8; PHP's own default is 128. */
export const PHP_OPCACHE_MEMORY = { min: 8, max: 4096, fallback: 128 } as const;

/**
 * PHP requests one web server runs at once: with mod_php each is an Apache
 * prefork child, so this is Apache's MaxRequestWorkers and ServerLimit.
 * Debian's default is 150. At least 2, so a slow request never holds the only
 * one; at most 1000, past the memory (workers x memoryLimit) of any host here.
 */
export const PHP_WORKERS = { min: 2, max: 1000, fallback: 150 } as const;

export const PHP_KEYS = ["memoryLimit", "uploadMaxFilesize", "postMaxSize", "maxExecutionTime", "opcacheMemory", "workers"] as const;

/** Bytes of a PHP size that matched PHP_SIZE. */
export function phpSizeBytes(s: string): number {
  const unit = { K: KB, M: MB, G: GB }[s.slice(-1)] ?? 1;
  return Number(unit === 1 ? s : s.slice(0, -1)) * unit;
}

function showBytes(n: number): string {
  return n % GB === 0 ? `${n / GB}G` : n % MB === 0 ? `${n / MB}M` : `${n / KB}K`;
}

function size(r: ConfigReader, name: keyof typeof PHP_SIZES): string {
  const bounds = PHP_SIZES[name];
  const key = `${r.key}.${name}`;
  // YAML reads a bare `1048576` as a number: bytes, as PHP would take it.
  const given = r.raw(name);
  if (given === undefined || given === null || given === "") return bounds.fallback;
  const raw = typeof given === "number" ? String(given) : given;
  if (typeof raw !== "string" || !PHP_SIZE.test(raw)) {
    throw new ConfigError(key, `expected ${PHP_SIZE_RULE}, got ${quote(raw)}`);
  }
  const bytes = phpSizeBytes(raw);
  if (bytes < bounds.min || bytes > bounds.max) {
    throw new ConfigError(key, `${raw} is out of range; use ${showBytes(bounds.min)} to ${showBytes(bounds.max)} [${bounds.fallback}]`);
  }
  return raw;
}

export function readPhp(r: ConfigReader): PhpModel {
  r.onlyKeys(PHP_KEYS);
  const php: PhpModel = {
    memoryLimit: size(r, "memoryLimit"),
    uploadMaxFilesize: size(r, "uploadMaxFilesize"),
    postMaxSize: size(r, "postMaxSize"),
    maxExecutionTime: r.integer("maxExecutionTime", PHP_MAX_EXECUTION_TIME, PHP_MAX_EXECUTION_TIME.fallback),
    opcacheMemory: r.integer("opcacheMemory", PHP_OPCACHE_MEMORY, PHP_OPCACHE_MEMORY.fallback),
    workers: r.integer("workers", PHP_WORKERS, PHP_WORKERS.fallback),
  };
  // PHP drops the whole request body of a post larger than post_max_size, file
  // included, so a larger upload_max_filesize would promise uploads that never arrive.
  if (phpSizeBytes(php.postMaxSize) < phpSizeBytes(php.uploadMaxFilesize)) {
    throw new ConfigError(
      `${r.key}.postMaxSize`,
      `${php.postMaxSize} is below php.uploadMaxFilesize (${php.uploadMaxFilesize}): PHP would refuse every upload larger than it; raise it or lower php.uploadMaxFilesize`,
    );
  }
  return php;
}
