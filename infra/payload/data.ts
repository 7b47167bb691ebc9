import { ClusterModel } from "../model/types";
import { baseView, clusterAddress, setting, sh, step, sysvService, template } from "./common";
import { sourced } from "./escape";
import { HostPayload, PayloadSecrets } from "./types";

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

  const payload: HostPayload = {
    host: d.host,
    packages: ["mariadb-server"],
    prepare: [step("config-folder", "mkdir -p /etc/drupal-cluster && chmod 0700 /etc/drupal-cluster")],
    files: [cnf, sql],
    configure: [],
    // MariaDB reads its options only at start.
    services: [sysvService("mariadb", [cnf], "restart")],
    // Needs MariaDB running with our settings; the SQL converges, so it may run again.
    afterStart: [step("database-and-grants", "mysql --protocol=socket < /etc/drupal-cluster/bootstrap.sql", [sql])],
  };

  if (model.files.share === "nfs") {
    const exportsFile = template("/etc/exports.d/drupal-cluster.exports", "data/nfs/exports.hbs", {
      ...base,
      exportPath: publicPath,
      clients,
    });
    payload.packages.push("nfs-kernel-server");
    payload.prepare.push(step("export-folder", sh`mkdir -p /etc/exports.d ${publicPath} && chown 33:33 ${publicPath}`));
    payload.files.push(exportsFile);
    payload.services.push({ ...sysvService("nfs-kernel-server", [exportsFile], "reload", "nfs-server"), reload: "exportfs -ra" });
  }
  return payload;
}
