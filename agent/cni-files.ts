// The two files through which the agent hands the node over to the runtime: subnet.json
// (read by the weft plugin on every ADD) and the network config list (read by the
// runtime). Both are written only once the overlay is ready, atomically (temp + rename),
// and only when their content changes.
import { join } from "node:path";
import { subnetPath, type Subnet } from "../plugins/weft/config";
import { writeFileAtomic } from "../shared/atomic-file";

export const CONFLIST_NAME = "10-weft.conflist";
export const NETWORK_NAME = "weft";
export const CONFLIST_VERSION = "1.0.0";

export interface CniFilesOptions {
  stateDir: string;
  ipamDir: string;
  cniConfDir: string;
}

/** subnet.json: the shape plugins/weft/config.ts reads. */
export function subnetFileContent(s: Subnet): string {
  return `${JSON.stringify({ podCIDR: s.podCIDR, clusterCIDR: s.clusterCIDR, mtu: s.mtu }, null, 2)}\n`;
}

/**
 * The plugin chain of the weft network, in one place: the weft plugin first; chained
 * plugins (portmap, once it exists) are appended here.
 */
export function conflistPlugins(o: Pick<CniFilesOptions, "stateDir" | "ipamDir">): Array<Record<string, unknown>> {
  return [weftPluginConf(o)];
}

/** The weft plugin's entry in the conflist. */
export function weftPluginConf(o: Pick<CniFilesOptions, "stateDir" | "ipamDir">): Record<string, unknown> {
  return { type: "weft", stateDir: o.stateDir, dataDir: o.ipamDir };
}

export function conflistContent(o: Pick<CniFilesOptions, "stateDir" | "ipamDir">): string {
  const list = {
    cniVersion: CONFLIST_VERSION,
    cniVersions: ["1.0.0", "1.1.0"],
    name: NETWORK_NAME,
    plugins: conflistPlugins(o),
  };
  return `${JSON.stringify(list, null, 2)}\n`;
}

/**
 * Publishes the node's subnet, then the conflist (in that order: the runtime may call the
 * plugin as soon as the conflist appears, and the plugin needs subnet.json). Returns a
 * log line per file written.
 */
export function publishCniFiles(o: CniFilesOptions, s: Subnet): string[] {
  const changes: string[] = [];
  const subnet = subnetPath(o);
  if (writeFileAtomic(subnet, subnetFileContent(s))) {
    changes.push(`write ${subnet} (podCIDR ${s.podCIDR}, clusterCIDR ${s.clusterCIDR}, mtu ${s.mtu})`);
  }
  const conflistPath = join(o.cniConfDir, CONFLIST_NAME);
  if (writeFileAtomic(conflistPath, conflistContent(o))) changes.push(`write ${conflistPath}`);
  return changes;
}
