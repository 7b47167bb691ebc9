import { ClusterModel, WebMember } from "../model/types";
import { baseView, step, sysvService, template } from "./common";
import { HostPayload, PayloadFile, PayloadSecrets, ProvisionStep } from "./types";

const PROBE_ROOT = "/var/www/probe";
const DRUPAL_HOME = "/var/www/drupal";
const PROBE_PAGES = ["index.php", "login.php", "health.php", "session.php", "files.php"];

export function webPayload(model: ClusterModel, member: WebMember, secrets: PayloadSecrets): HostPayload {
  const host = member.host;
  const base = baseView(model, host);
  const probe = model.app.kind === "probe";
  const docroot = probe ? PROBE_ROOT : `${DRUPAL_HOME}/web`;
  const publicFiles = probe ? model.files.publicPath : `${DRUPAL_HOME}/web/sites/default/files`;
  const db = {
    database: model.data.database,
    dbUser: model.data.user,
    dbPassword: secrets.dbPassword,
    dbHost: model.data.host.clusterAddress,
    dbPort: String(model.data.port),
  };

  const vhost = template("/etc/apache2/sites-available/drupal-cluster-web.conf", "web/apache2/web-vhost.conf.hbs", {
    ...base,
    serverName: model.serverName,
    clusterAddress: host.clusterAddress,
    route: member.route,
    docroot,
    publicFiles,
    logLevel: model.balancer.logLevel,
    separator: model.sticky.separator,
    cookieName: model.sticky.cookieName,
    stickyValue: member.stickyValue,
    cookieDomain: model.sticky.cookieDomain || model.serverName,
  });

  const appFiles: PayloadFile[] = probe
    ? [
        template(`${PROBE_ROOT}/config.php`, "web/probe/config.php.hbs", {
          ...base,
          ...db,
          route: member.route,
          dsn: `mysql:host=${db.dbHost};port=${db.dbPort};dbname=${db.database};charset=utf8mb4`,
          publicFiles,
        }, { mode: "0640", owner: "root:www-data", secret: true }),
        ...PROBE_PAGES.map((page) => template(`${PROBE_ROOT}/${page}`, `web/probe/${page}.hbs`, base)),
      ]
    : [
        template(`${DRUPAL_HOME}/web/sites/default/settings.php`, "web/drupal/settings.php.hbs", {
          ...base,
          ...db,
          hashSalt: secrets.hashSalt,
          cookieDomain: model.sticky.cookieDomain,
          reverseProxyAddresses: [model.balancer.host.clusterAddress],
          trustedHostPatterns: model.trustedHostPatterns,
        }, { mode: "0640", owner: "root:www-data", secret: true }),
      ];

  const files: PayloadFile[] = [vhost, ...appFiles];
  const configure: ProvisionStep[] = [
    step("enable-site", "a2enmod -q rewrite headers && a2dissite -q 000-default && a2ensite -q drupal-cluster-web"),
  ];
  if (model.files.share === "nfs") {
    const mount = template("/usr/local/sbin/drupal-cluster-mount-files", "web/nfs/mount-files.sh.hbs", {
      ...base,
      publicFiles,
      exportHost: model.data.host.clusterAddress,
      exportPath: model.files.publicPath,
    }, { mode: "0755" });
    files.push(mount);
    configure.push(step("mount-shared-files", "/usr/local/sbin/drupal-cluster-mount-files", [mount]));
  }
  configure.push(step("own-shared-files", `mkdir -p ${publicFiles} && chown www-data:www-data ${publicFiles}`));

  const packages = ["apache2", "libapache2-mod-php", "php-mysql", "curl", "ca-certificates"];
  if (!probe) packages.push("php-gd", "php-xml", "php-mbstring", "php-curl", "php-opcache", "unzip");
  if (model.files.share === "nfs") packages.push("nfs-common");

  return {
    host,
    packages,
    prepare: probe ? [step("docroot", `mkdir -p ${PROBE_ROOT}`)] : [drupalInstallStep(model)],
    files,
    configure,
    services: [sysvService("apache2", files, "reload")],
    afterStart: [],
  };
}

/** Drupal core from the configured source; skipped when that release is already there. */
function drupalInstallStep(model: ClusterModel): ProvisionStep {
  if (model.app.kind !== "drupal") throw new Error("drupalInstallStep needs app drupal");
  const src = model.app.source;
  const marker = `${DRUPAL_HOME}/.drupal-cluster-source`;
  const want = src.type === "tarball" ? src.url : `composer:${src.version}`;
  const fetch =
    src.type === "tarball"
      ? `apt-get install -y -q wget && mkdir -p ${DRUPAL_HOME}/web && wget -qO- '${src.url}' | tar -xz --strip-components=1 -C ${DRUPAL_HOME}/web`
      : `apt-get install -y -q composer && composer create-project --no-interaction 'drupal/recommended-project:${src.version}' ${DRUPAL_HOME}`;
  return step(
    "install-drupal",
    `if [ "$(cat ${marker} 2>/dev/null)" != '${want}' ]; then ${fetch} && echo '${want}' > ${marker}; fi && mkdir -p ${DRUPAL_HOME}/web/sites/default`,
  );
}
