/**
 * `files.publicPath`: the folder every web server shares for uploads. It is
 * created, exported over NFS, mounted and handed to www-data (chown), and named in
 * a vhost `<Directory>`; so it must be a plain path, and one whose handing-over
 * harms nothing.
 */
import { ConfigError } from "./errors";
import { quote } from "./grammar";

/** Folders that are the system's, with everything below them. */
const SYSTEM_TREES = [
  "/etc",
  "/bin",
  "/sbin",
  "/usr",
  "/boot",
  "/dev",
  "/proc",
  "/sys",
  "/root",
  "/run",
  "/tmp",
  "/var/lib",
  "/var/log",
  "/var/cache",
  "/var/spool",
  "/var/mail",
  "/var/backups",
  "/var/run",
  "/var/lock",
  "/var/tmp",
  "/var/opt",
  "/var/local",
];

/** `/lib`, `/lib32`, `/lib64`, `/libx32` and whatever else a multiarch system adds. */
const LIB_TREE = /^\/lib[^/]*(\/|$)/;

/** Folders that hold others' data: a share may live below them, never be them. */
const SHARED_PARENTS = ["/", "/var", "/home", "/srv", "/opt", "/mnt", "/media"];

/**
 * Where the web servers serve from (infra/payload/web.ts: /var/www/probe,
 * /var/www/drupal/web). Uploads below a docroot could be run as PHP by any
 * anonymous uploader; a share containing it would hand the code to www-data.
 */
export const WEB_ROOT = "/var/www";

const SHAPE = /^(\/[A-Za-z0-9._-]+)+$/;

function within(path: string, tree: string): boolean {
  return path === tree || path.startsWith(`${tree}/`);
}

export function checkPublicPath(key: string, path: string): void {
  const accepted = "use an absolute, normalised path of letters, digits, . _ - and / outside the system folders, such as /srv/drupal-files";
  if (path.length > 255 || !SHAPE.test(path) || path.split("/").some((seg) => seg === "." || seg === "..")) {
    throw new ConfigError(key, `${quote(path)} is not accepted; ${accepted}`);
  }
  const system = SYSTEM_TREES.find((t) => within(path, t)) ?? (LIB_TREE.test(path) ? path.split("/").slice(0, 2).join("/") : undefined);
  if (system !== undefined) {
    throw new ConfigError(key, `${quote(path)} is inside the system folder ${system}, which would be handed to www-data; ${accepted}`);
  }
  if (SHARED_PARENTS.includes(path)) {
    throw new ConfigError(key, `${quote(path)} is a top-level folder that holds other data; use a folder of its own below it, such as /srv/drupal-files`);
  }
  if (within(path, WEB_ROOT) || within(WEB_ROOT, path)) {
    throw new ConfigError(key, `${quote(path)} overlaps the web servers' document roots under ${WEB_ROOT} (an upload there could run as PHP); ${accepted}`);
  }
}
