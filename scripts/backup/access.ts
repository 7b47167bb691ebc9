/**
 * What the backup and the restore need of a cluster: the data server, the host
 * that holds the shared files folder itself, and the names they live under.
 * Built from a stack by scripts/backup/cluster.ts; tests build it with stand-in
 * hosts.
 */
import { Remote } from "./remote";

export interface ClusterAccess {
  project: string;
  stack: string;
  app: "probe" | "drupal";
  /** The database on the data server (letters, digits and _ only: the config checks it). */
  database: string;
  data: { host: string; remote: Remote };
  files: {
    /** files.publicPath: the shared folder, on the host below. */
    publicPath: string;
    /** nfs: the data server's export; external: a web server's mount of the shared storage. */
    share: "nfs" | "external";
    host: string;
    remote: Remote;
  };
}

/** Names the restore uses beside the live data; a backup never contains them. */
export const STAGE_DATABASE = "drupal_cluster_restore";
export const OLD_DATABASE = "drupal_cluster_pre_restore";
export const STAGE_DIR = ".drupal-cluster-restore-stage";
export const OLD_DIR = ".drupal-cluster-restore-old";

/** Database names go into SQL and shell text: the config allows only these characters. */
export function checkedDatabaseName(name: string): string {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(name)) throw new Error(`database name ${JSON.stringify(name)} is not letters, digits and _`);
  if (name === STAGE_DATABASE || name === OLD_DATABASE)
    throw new Error(`database name ${name} is the one the restore uses for its own staging; use another for the stack's database`);
  return name;
}
