import { HostModel } from "../model/types";

/**
 * What one host needs, as plain data: built once from the model and delivered
 * unchanged by either target. Targets diff on this data, so an unchanged payload
 * means "no changes".
 */
export interface PayloadFile {
  /** Absolute path on the host. */
  path: string;
  content: string;
  /** Octal file mode, e.g. "0644". */
  mode: string;
  owner: string;
  /** True when the content is derived from a secret: delivered as a Pulumi secret. */
  secret: boolean;
}

/** A shell step, written to be safe to run again (idempotent). */
export interface ProvisionStep {
  name: string;
  run: string;
  /** Paths of payload files whose change makes this step run again. */
  watch: string[];
  /** Exits 0 while the step's effect is in place: a refresh that finds it failing applies the step again. */
  check?: string;
}

/**
 * A long-running service: started once, reloaded when one of its `watch` files
 * changes, restarted instead when one of its `restartWatch` files does.
 */
export interface ServiceSpec {
  name: string;
  start: string;
  reload: string;
  stop: string;
  /** Exits 0 while the service runs: how a refresh tells a stopped service. */
  status: string;
  watch: string[];
  /** Runs instead of `reload` when a `restartWatch` file changed. */
  restart?: string;
  /** Files the service reads only when it starts afresh: a reload would leave their change unused. */
  restartWatch?: string[];
}

export interface HostPayload {
  host: HostModel;
  /** Debian packages installed before anything else. */
  packages: string[];
  /** Runs after the packages are in, before any file lands (users, folders). */
  prepare: ProvisionStep[];
  files: PayloadFile[];
  /** Runs after the files land, before services start (enable sites, create the database). */
  configure: ProvisionStep[];
  services: ServiceSpec[];
  /** Runs once the services are up (create the database and grants). */
  afterStart: ProvisionStep[];
  /**
   * Runs once every balancer has taken the change: takes away what web servers
   * that left the cluster had (their database users), which they need until
   * the balancers have drained and dropped them.
   */
  afterBalancers?: ProvisionStep[];
}

/** The secret values that payloads are rendered with. */
export interface PayloadSecrets {
  dbPassword: string;
  hashSalt: string;
  managerToken: string;
  /** What the balancer's cron timer calls the cron URL with (infra/payload/cron.ts). */
  cronKey: string;
  /** The balancer's TLS key (infra/payload/tls.ts); empty without HTTPS. */
  tlsPrivateKey: string;
}
