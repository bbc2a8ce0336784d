// The delegated config of each attachment, saved at ADD so DEL (and CHECK) act on the
// exact config ADD used, even after subnet.json changed or disappeared. The pod's netns
// path is saved with it: the agent collects attachments whose netns is gone (gc.ts).
import { replaceFile } from "../../shared/atomic-file";
import { isObject } from "../../shared/cni/fold-keys";
import { withFileLock } from "../../shared/file-lock";
import { joinPath as join, listDir, readText, removeFile, writeText } from "../../shared/fs";
import type { WeftConf } from "./config";

/**
 * One saved attachment file: `{"netns": …, "delegate": {…}}`. Files from before the netns
 * was saved hold the delegate alone, and still load.
 */
export interface Saved {
  /** the netns path ADD was given */
  netns?: string;
  delegate: Record<string, unknown>;
}

export interface SavedAttachment {
  containerID: string;
  ifname: string;
  /** its file's content, null when unreadable */
  saved: Saved | null;
}

function dir(conf: WeftConf): string {
  return join(conf.stateDir, "attachments");
}

// ":" appears in none of network name, container ID or ifname, so it separates them.
function file(conf: WeftConf, containerId: string, ifname: string, ext = ".json"): string {
  return join(dir(conf), `${conf.name}:${containerId}:${ifname}${ext}`);
}

/** The saved attachment of (containerId, ifname), or null. */
export function loadAttachment(conf: WeftConf, containerId: string, ifname: string): Saved | null {
  let v: unknown;
  try {
    v = JSON.parse(readText(file(conf, containerId, ifname)));
  } catch {
    return null;
  }
  // Anything but what weft writes is no saved attachment: never a crash of DEL or GC.
  if (!isObject(v)) return null;
  if (!("delegate" in v)) return { delegate: v }; // the older format: the delegated config alone
  return isObject(v["delegate"]) && (v["netns"] === undefined || typeof v["netns"] === "string") ? (v as unknown as Saved) : null;
}

/**
 * The attachment's lock file, beside its saved file and removed with it. ADD saves under
 * it and the agent's orphan pass decides and runs its DEL under it, so the pass never
 * undoes a new ADD of the same container and ifname (a runtime restarting a container
 * keeps its ID): that ADD saves either before the pass looks, which then finds the new
 * netns, or after the DEL, before it reserves anything. Only that ADD ever waits.
 */
export function attachmentLock(conf: WeftConf, containerId: string, ifname: string): string {
  return file(conf, containerId, ifname, ".lock");
}

export function saveDelegate(conf: WeftConf, containerId: string, ifname: string, netns: string, delegate: Record<string, unknown>): void {
  const saved: Saved = { netns, delegate };
  withFileLock(attachmentLock(conf, containerId, ifname), () => replaceFile(file(conf, containerId, ifname), (tmp) => writeText(tmp, JSON.stringify(saved))));
}

export function loadDelegate(conf: WeftConf, containerId: string, ifname: string): Record<string, unknown> | null {
  return loadAttachment(conf, containerId, ifname)?.delegate ?? null;
}

export function forgetDelegate(conf: WeftConf, containerId: string, ifname: string): void {
  removeFile(file(conf, containerId, ifname), { force: true });
  // Removed while another process may wait on it: that one then holds a lock on a file
  // no longer listed, which only an ADD saving a new attachment can be doing.
  removeFile(attachmentLock(conf, containerId, ifname), { force: true });
}

/** Saved attachments of this network. */
export function savedAttachments(conf: WeftConf): SavedAttachment[] {
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
    .map(([, containerID, ifname]) => ({ containerID: containerID!, ifname: ifname!, saved: loadAttachment(conf, containerID!, ifname!) }));
}
