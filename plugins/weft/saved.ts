// The delegated config of each attachment, saved at ADD so DEL (and CHECK) act on the
// exact config ADD used, even after subnet.json changed or disappeared.
import { replaceFile } from "../../shared/atomic-file";
import { joinPath as join, listDir, makeDirs, readText, removeFile, writeText } from "../../shared/fs";
import type { WeftConf } from "./config";

function dir(conf: WeftConf): string {
  return join(conf.stateDir, "attachments");
}

// ":" appears in none of network name, container ID or ifname, so it separates them.
function file(conf: WeftConf, containerId: string, ifname: string): string {
  return join(dir(conf), `${conf.name}:${containerId}:${ifname}.json`);
}

export function saveDelegate(conf: WeftConf, containerId: string, ifname: string, delegate: Record<string, unknown>): void {
  makeDirs(dir(conf));
  replaceFile(file(conf, containerId, ifname), (tmp) => writeText(tmp, JSON.stringify(delegate)));
}

export function loadDelegate(conf: WeftConf, containerId: string, ifname: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readText(file(conf, containerId, ifname))) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function forgetDelegate(conf: WeftConf, containerId: string, ifname: string): void {
  removeFile(file(conf, containerId, ifname), { force: true });
}

/** Saved attachments of this network: [containerId, ifname] pairs. */
export function savedAttachments(conf: WeftConf): Array<{ containerID: string; ifname: string }> {
  let names: string[];
  try {
    names = listDir(dir(conf));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(".json"))
    .map((n) => n.slice(0, -".json".length).split(":"))
    .filter((parts) => parts.length === 3 && parts[0] === conf.name)
    .map(([, containerID, ifname]) => ({ containerID: containerID!, ifname: ifname! }));
}
