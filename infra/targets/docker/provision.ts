import { ClusterModel } from "../../model/types";
import { render } from "../../payload/render";
import { HostPayload } from "../../payload/types";

export const PROVISION_PATH = "/usr/local/sbin/drupal-cluster-provision";
/** Written when provisioning has finished: the container's health check. */
export const READY_PATH = "/run/drupal-cluster-ready";

/** The container's entrypoint: provisions the host in the ssh target's order, then stays up. */
export function provisionScript(model: ClusterModel, layout: HostPayload): string {
  return render("docker/provision.sh.hbs", {
    stack: `${model.project}/${model.stack}`,
    hostName: layout.host.name,
    packages: layout.packages,
    prepare: layout.prepare,
    configure: layout.configure,
    services: layout.services,
    afterStart: layout.afterStart,
    // Each container provisions itself, so nothing here could wait for the
    // balancers to stop using a removed web server: its database user stays
    // (README, "Scaling out and in"), rather than being dropped under it.
    afterBalancers: [],
    // Uploads land as root; owners (www-data) exist only once packages are in.
    owned: layout.files.filter((f) => f.owner !== "root:root"),
    readyPath: READY_PATH,
  });
}
