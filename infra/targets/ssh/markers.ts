/**
 * Where an applied step leaves its marker on its host: one file per resource
 * name (which names the host too, "lb1-install"), holding the resource's id.
 * A host without the marker is new, rebuilt, or never finished the step.
 */
export const MARKER_DIR = "/var/lib/drupal-cluster/applied";

export function markerFile(resourceName: string): string {
  return `${MARKER_DIR}/${resourceName.replace(/[^A-Za-z0-9._-]/g, "_")}`;
}
