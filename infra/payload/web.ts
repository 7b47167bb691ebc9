import { balancerHosts, ClusterModel, WebMember } from "../model/types";
import { baseView, clusterAddress, restartOn, routeKey, setting, sh, step, sysvService, template } from "./common";
import { Sourced, sourced } from "./escape";
import { HostPayload, PayloadFile, PayloadSecrets, ProvisionStep } from "./types";

const PROBE_ROOT = "/var/www/probe";
const DRUPAL_HOME = "/var/www/drupal";
const PROBE_PAGES = ["index.php", "login.php", "health.php", "session.php", "files.php", "php.php"];
/**
 * The stack's PHP settings. Kept here and linked into every installed PHP's
 * Apache conf.d (Debian's is /etc/php/<version>/apache2/conf.d; bookworm has 8.2),
 * so no PHP version is written into the program.
 */
const PHP_INI = "/etc/drupal-cluster/php-apache2.ini";
const PHP_INI_LINK = "90-drupal-cluster.ini";

export function webPayload(model: ClusterModel, member: WebMember, secrets: PayloadSecrets): HostPayload {
  const host = member.host;
  const base = baseView(model, host);
  const probe = model.app.kind === "probe";
  const docroot = probe ? PROBE_ROOT : `${DRUPAL_HOME}/web`;
  const publicFiles: Sourced | string = probe ? setting(model, "files.publicPath", model.files.publicPath) : `${DRUPAL_HOME}/web/sites/default/files`;
  const route = setting(model, routeKey(model, member), member.route);
  const db = {
    database: setting(model, "data.database", model.data.database),
    dbUser: setting(model, "data.user", model.data.user),
    dbPassword: sourced("secret dbPassword", secrets.dbPassword),
    dbHost: clusterAddress(model, model.data.host),
    dbPort: String(model.data.port),
  };
  const serverName = setting(model, "serverName", model.serverName);

  const vhost = template("/etc/apache2/sites-available/drupal-cluster-web.conf", "web/apache2/web-vhost.conf.hbs", {
    ...base,
    serverName,
    clusterAddress: clusterAddress(model, host),
    route,
    docroot,
    publicFiles,
    logLevel: setting(model, "balancer.logLevel", model.balancer.logLevel),
    separator: setting(model, "balancer.stickysessionsep", model.sticky.separator),
    cookieName: setting(model, "balancer.stickysession", model.sticky.cookieName),
    stickyValue: setting(model, `balancer.cookieValuePrefix (default "balancer" + balancer.stickysessionsep) + ${routeKey(model, member)}`, member.stickyValue),
    cookieDomain: model.sticky.cookieDomain
      ? setting(model, "balancer.cookieDomain", model.sticky.cookieDomain)
      : setting(model, "serverName (the default of balancer.cookieDomain)", model.serverName),
    httpsAtBalancer: model.balancer.tls !== undefined,
  });

  const appFiles: PayloadFile[] = probe
    ? [
        template(
          `${PROBE_ROOT}/config.php`,
          "web/probe/config.php.hbs",
          {
            ...base,
            ...db,
            route,
            dsn: setting(
              model,
              `${clusterAddress(model, model.data.host).origin.slice(model.project.length + 1)}, data.port, data.database (the PDO DSN)`,
              `mysql:host=${db.dbHost};port=${db.dbPort};dbname=${db.database};charset=utf8mb4`,
            ),
            publicFiles,
            balancerAddress: clusterAddress(model, model.balancer.host),
          },
          { mode: "0640", owner: "root:www-data", secret: true },
        ),
        ...PROBE_PAGES.map((page) => template(`${PROBE_ROOT}/${page}`, `web/probe/${page}.hbs`, base)),
      ]
    : [
        template(
          `${DRUPAL_HOME}/web/sites/default/settings.php`,
          "web/drupal/settings.php.hbs",
          {
            ...base,
            ...db,
            hashSalt: secrets.hashSalt,
            cookieDomain: setting(model, "balancer.cookieDomain", model.sticky.cookieDomain),
            reverseProxyAddresses: balancerHosts(model.balancer).map((h) => clusterAddress(model, h)),
            trustedHostPatterns: model.trustedHostPatterns.map((p, i) => setting(model, `trustedHostPatterns[${i}]`, p)),
          },
          { mode: "0640", owner: "root:www-data", secret: true },
        ),
      ];

  const phpIni = template(PHP_INI, "web/php/drupal-cluster.ini.hbs", {
    ...base,
    memoryLimit: setting(model, "php.memoryLimit", model.php.memoryLimit),
    uploadMaxFilesize: setting(model, "php.uploadMaxFilesize", model.php.uploadMaxFilesize),
    postMaxSize: setting(model, "php.postMaxSize", model.php.postMaxSize),
    maxExecutionTime: model.php.maxExecutionTime,
    opcacheMemory: model.php.opcacheMemory,
  });

  const workersConf = template("/etc/apache2/conf-available/drupal-cluster-workers.conf", "web/apache2/workers.conf.hbs", {
    ...base,
    workers: model.php.workers,
  });

  const files: PayloadFile[] = [vhost, ...appFiles, phpIni, workersConf];
  const configure: ProvisionStep[] = [
    step("enable-site", "a2enmod -q rewrite headers && a2dissite -q 000-default && a2ensite -q drupal-cluster-web && a2enconf -q drupal-cluster-workers"),
    phpIniLinkStep(),
  ];
  if (model.files.share === "nfs") {
    const mount = template(
      "/usr/local/sbin/drupal-cluster-mount-files",
      "web/nfs/mount-files.sh.hbs",
      {
        ...base,
        publicFiles,
        exportHost: clusterAddress(model, model.data.host),
        exportPath: setting(model, "files.publicPath", model.files.publicPath),
      },
      { mode: "0755" },
    );
    files.push(mount);
    configure.push(step("mount-shared-files", "/usr/local/sbin/drupal-cluster-mount-files", [mount]));
  }
  configure.push(step("own-shared-files", sh`mkdir -p ${publicFiles} && chown www-data:www-data ${publicFiles}`));

  const packages = ["apache2", "libapache2-mod-php", "php-mysql", "curl", "ca-certificates"];
  if (!probe) packages.push("php-gd", "php-xml", "php-mbstring", "php-curl", "php-opcache", "unzip");
  if (model.files.share === "nfs") packages.push("nfs-common");

  return {
    host,
    packages,
    prepare: probe ? [step("docroot", sh`mkdir -p ${PROBE_ROOT}`)] : [drupalInstallStep(model)],
    files,
    configure,
    // A graceful reload for everything but the workers' limit: in-flight requests
    // finish. The PHP settings too (measured on bookworm's PHP 8.2: a reload
    // brings the new memory_limit and OPcache's new shared memory size). A new
    // ServerLimit takes a restart: Apache refuses it on a graceful one (AH00179).
    services: [
      restartOn(
        sysvService(
          "apache2",
          files.filter((f) => f !== workersConf),
          "reload",
        ),
        [workersConf],
      ),
    ],
    afterStart: [],
  };
}

/** PHP_INI, read by every PHP that the packages put under Apache (a refresh finds a missing link). */
function phpIniLinkStep(): ProvisionStep {
  const dirs = "/etc/php/*/apache2/conf.d"; // a glob: unquoted on purpose
  const link = sh`"$d"/${PHP_INI_LINK}`;
  return {
    ...step(
      "link-php-settings",
      `set -- ${dirs}; [ -d "$1" ] || { echo "no ${dirs}: the packages installed no PHP for Apache" >&2; exit 1; }; ` +
        `for d in "$@"; do ln -sfn ${sh`${PHP_INI}`} ${link}; done`,
    ),
    check: `for d in ${dirs}; do [ "$(readlink ${link})" = ${sh`${PHP_INI}`} ] || exit 1; done`,
  };
}

/** Drupal core from the configured source; skipped when that release is already there. */
function drupalInstallStep(model: ClusterModel): ProvisionStep {
  if (model.app.kind !== "drupal") throw new Error("drupalInstallStep needs app drupal");
  const src = model.app.source;
  const marker = `${DRUPAL_HOME}/.drupal-cluster-source`;
  const want = src.type === "tarball" ? setting(model, "drupal.url", src.url) : setting(model, "drupal.version", `composer:${src.version}`);
  const fetch =
    src.type === "tarball"
      ? sh`apt-get install -y -q wget && mkdir -p ${`${DRUPAL_HOME}/web`} && wget -qO- ${want} | tar -xz --strip-components=1 -C ${`${DRUPAL_HOME}/web`}`
      : sh`apt-get install -y -q composer && composer create-project --no-interaction ${setting(model, "drupal.version", `drupal/recommended-project:${src.version}`)} ${DRUPAL_HOME}`;
  return step(
    "install-drupal",
    // printf, not echo: dash's echo would turn a backslash in the value into another character.
    sh`if [ "$(cat ${marker} 2>/dev/null)" != ${want} ]; then ` +
      fetch +
      sh` && printf '%s\n' ${want} > ${marker}; fi && mkdir -p ${`${DRUPAL_HOME}/web/sites/default`}`,
  );
}
