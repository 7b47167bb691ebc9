import { ClusterModel } from "../model/types";
import { addressKey, baseView, clusterAddress, setting, sh, step, sysvService, template } from "./common";
import { sourced } from "./escape";
import { HostPayload, PayloadSecrets, ProvisionStep } from "./types";

/** Where the data server keeps the script that writes and checks the NFS export to the web servers. */
export const NFS_EXPORTS = "/usr/local/sbin/drupal-cluster-nfs-exports";

/** Where the data server keeps the script that records, drops and checks the web servers' database users. */
export const DB_USERS = "/usr/local/sbin/drupal-cluster-db-users";

export function dataPayload(model: ClusterModel, secrets: PayloadSecrets): HostPayload {
  const d = model.data;
  const base = baseView(model, d.host);
  // Grants and exports name the web servers' cluster addresses: nobody else gets in.
  const clients = model.web.map((w) => clusterAddress(model, w.host));
  const publicPath = setting(model, "files.publicPath", model.files.publicPath);

  const cnf = template("/etc/mysql/mariadb.conf.d/60-drupal-cluster.cnf", "data/mariadb/cluster.cnf.hbs", {
    ...base,
    bindAddress: clusterAddress(model, d.host),
    port: d.port,
  });
  const sql = template(
    "/etc/drupal-cluster/bootstrap.sql",
    "data/mariadb/bootstrap.sql.hbs",
    {
      ...base,
      database: setting(model, "data.database", d.database),
      user: setting(model, "data.user", d.user),
      dbPassword: sourced("secret dbPassword", secrets.dbPassword),
      clients,
      probe: model.app.kind === "probe",
    },
    { mode: "0600", secret: true },
  );

  const users = template(
    DB_USERS,
    "data/mariadb/db-users.sh.hbs",
    {
      ...base,
      wanted: model.web.map((w) => setting(model, `data.user, ${addressKey(model, w.host)}`, `${d.user}@${w.host.clusterAddress}`)),
    },
    { mode: "0755" },
  );
  // Recorded before they are made: a run cut short after CREATE USER still knows them.
  const grants: ProvisionStep = {
    ...step("database-and-grants", sh`${DB_USERS} record && mysql --protocol=socket < /etc/drupal-cluster/bootstrap.sql`, [sql, users]),
    check: sh`${DB_USERS} check-granted`,
  };
  // After the balancers: a removed web server serves (and needs its user) until they have drained and dropped it.
  const dropRemoved: ProvisionStep = { ...step("drop-removed-db-users", sh`${DB_USERS} reconcile`, [users]), check: sh`${DB_USERS} check-reconciled` };

  const payload: HostPayload = {
    host: d.host,
    packages: ["mariadb-server"],
    prepare: [step("config-folder", "mkdir -p /etc/drupal-cluster && chmod 0700 /etc/drupal-cluster")],
    files: [cnf, sql, users],
    configure: [],
    // MariaDB reads its options only at start.
    services: [sysvService("mariadb", [cnf], "restart")],
    // Needs MariaDB running with our settings; the SQL converges, so it may run again.
    afterStart: [grants],
    afterBalancers: [dropRemoved],
  };

  if (model.files.share === "nfs") {
    // Widened before the web servers change, narrowed after the balancers: as the database users.
    const exportsScript = template(NFS_EXPORTS, "data/nfs/nfs-exports.sh.hbs", { ...base, exportPath: publicPath, clients }, { mode: "0755" });
    payload.packages.push("nfs-kernel-server");
    payload.prepare.push(step("export-folder", sh`mkdir -p /etc/exports.d ${publicPath} && chown 33:33 ${publicPath}`));
    payload.files.push(exportsScript);
    payload.configure.push({ ...step("nfs-exports-widen", sh`${NFS_EXPORTS} widen`, [exportsScript]), check: sh`${NFS_EXPORTS} check-widened` });
    payload.services.push({ ...sysvService("nfs-kernel-server", [], "reload", "nfs-server"), reload: "exportfs -ra" });
    payload.afterBalancers = [
      ...(payload.afterBalancers ?? []),
      { ...step("nfs-exports-narrow", sh`${NFS_EXPORTS} narrow`, [exportsScript]), check: sh`${NFS_EXPORTS} check-narrowed` },
    ];
  }
  return payload;
}
