import { ClusterModel } from "../model/types";
import { baseView, clusterAddress, file, routeKey, setting, sh, step, sysvService, template } from "./common";
import { proxyNodeConfigFile } from "./proxy-node-config";
import { HostPayload, PayloadFile, PayloadSecrets, ServiceSpec } from "./types";

/** proxy-node's compiled files, keyed by their path below proxy-node/dist. */
export type ProxyNodeArtifacts = ReadonlyMap<string, string>;

const PROXY_NODE_HOME = "/opt/proxy-node";

/** Apache modules mod_proxy_balancer needs on Debian, beyond what is enabled by default. */
export function apacheBalancerModules(model: ClusterModel): string[] {
  return ["proxy", "proxy_http", "proxy_balancer", "slotmem_shm", `lbmethod_${model.balancer.lbmethod}`, "status", "rewrite", "headers"];
}

export function balancerPayload(model: ClusterModel, secrets: PayloadSecrets, artifacts: ProxyNodeArtifacts): HostPayload {
  const b = model.balancer;
  const base = baseView(model, b.host);
  const members = model.web.map((w) => ({
    url: setting(model, clusterAddress(model, w.host).origin.slice(model.project.length + 1), w.memberUrl),
    route: setting(model, routeKey(model, w), w.route),
    lbfactor: w.lbfactor,
  }));
  const apache = b.engine === "apache";

  // proxy-node's own config type, checked by proxy-node's validation as it is rendered.
  const proxyNodeConfig = proxyNodeConfigFile(model, secrets, "/etc/proxy-node/config.json");
  const unit = template("/etc/systemd/system/proxy-node.service", "balancer/proxy-node/proxy-node.service.hbs", {
    ...base,
    mode: apache ? "agent" : "serve",
    afterApache: apache,
  });
  const control = template("/usr/local/sbin/proxy-node-service", "balancer/proxy-node/proxy-node-service.sh.hbs", base, {
    mode: "0755",
  });
  const code = [...artifacts].map(([rel, content]) => file(`${PROXY_NODE_HOME}/dist/${rel}`, content));
  if (!code.some((f) => f.path.endsWith("/dist/cli.js"))) {
    throw new Error("proxy-node is not built: proxy-node/dist/cli.js is missing (run `npm run build`)");
  }
  const proxyNodeFiles = [proxyNodeConfig, unit, control, ...code];
  const proxyNode: ServiceSpec = {
    name: "proxy-node",
    start: "proxy-node-service start",
    // A restart rather than SIGHUP: the watched files include proxy-node's code.
    reload: "proxy-node-service restart",
    stop: "proxy-node-service stop || true",
    status: "proxy-node-service status",
    watch: proxyNodeFiles.map((f) => f.path),
  };

  if (!apache) {
    return {
      host: b.host,
      packages: ["nodejs", "curl", "ca-certificates"],
      prepare: [],
      files: proxyNodeFiles,
      configure: [],
      services: [proxyNode],
      afterStart: [],
    };
  }

  const view = {
    ...base,
    serverName: setting(model, "serverName", model.serverName),
    httpPort: b.httpPort,
    logLevel: setting(model, "balancer.logLevel", b.logLevel),
    name: setting(model, "balancer.name", b.name),
    members,
    retry: b.retry,
    connectTimeout: b.connectTimeout,
    timeout: b.timeout,
    lbmethod: setting(model, "balancer.lbmethod", b.lbmethod),
    stickysession: setting(model, "balancer.stickysession", model.sticky.stickysession),
    // Apache reads the route after its default "." unless told otherwise; without
    // this any other separator would leave the cluster without stickiness.
    stickysessionsep: model.sticky.separator === "." ? "" : model.sticky.separator,
    managerAllow: b.managerAllow.map((cidr, i) => setting(model, `balancer.managerAllow[${i}]`, cidr)),
  };
  const apacheFiles: PayloadFile[] = [
    template("/etc/apache2/ports.conf", "balancer/apache2/ports.conf.hbs", view),
    template("/etc/apache2/conf-available/drupal-cluster-proxy.conf", "balancer/apache2/proxy.conf.hbs", view),
    template("/etc/apache2/sites-available/drupal-cluster-balancer.conf", "balancer/apache2/balancer-vhost.conf.hbs", view),
  ];
  return {
    host: b.host,
    packages: ["apache2", "nodejs", "curl", "ca-certificates"],
    prepare: [],
    files: [...apacheFiles, ...proxyNodeFiles],
    configure: [
      step(
        "enable-apache-balancer",
        sh`a2enmod -q ${apacheBalancerModules(model)} && a2enconf -q drupal-cluster-proxy && a2dissite -q 000-default && a2ensite -q drupal-cluster-balancer`,
      ),
    ],
    // Module changes need a restart; a graceful one finishes in-flight requests.
    services: [sysvService("apache2", apacheFiles, "reload"), proxyNode],
    afterStart: [],
  };
}
