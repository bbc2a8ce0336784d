// The delegated config of each attachment, saved at ADD so DEL (and CHECK) act on the
// exact config ADD used, even after subnet.json changed or disappeared. The pod's netns
// path is saved with it: the agent collects attachments whose netns is gone (gc.ts).
import { replaceFile } from "../../shared/atomic-file";
import { isObject } from "../../shared/cni/fold-keys";
import { tryFileLock, withFileLock, type LockOptions } from "../../shared/file-lock";
import { exists, joinPath as join, listDir, readText, removeFile, writeText } from "../../shared/fs";
import type { Attachment } from "../../shared/cni/skeleton";
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

export interface SavedAttachment extends Attachment {
  /** its file's content, null when unreadable */
  saved: Saved | null;
}

/** The directory of the saved attachments (and their lock files). */
export function attachmentsDir(conf: WeftConf): string {
  return join(conf.stateDir, "attachments");
}

const SAVED = ".json";

/** Whether a name in attachmentsDir is a saved attachment (not a lock file or a temporary copy). */
export const isSavedAttachment = (name: string): boolean => name.endsWith(SAVED);

// ":" appears in none of network name, container ID or ifname, so it separates them.
function file(conf: WeftConf, containerId: string, ifname: string, ext = SAVED): string {
  return join(attachmentsDir(conf), `${conf.name}:${containerId}:${ifname}${ext}`);
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
 * Runs `fn` holding the attachment's lock (`<name>:<container>:<ifname>.lock` beside its
 * saved file; flock). ADD and every DEL (the runtime's, the GC verb's, the agent's orphan
 * pass) hold it throughout, so none of them ever acts on the attachment while another
 * does: the pass cannot undo a new ADD of the same container and ifname (a runtime
 * restarting a container keeps its ID), nor DEL while it runs. Only calls for the same
 * attachment ever wait. The lock file goes on the way out once nothing is saved: a call
 * never leaves one behind. Without the attachments directory (and `createDir` false)
 * nothing is saved to guard, and `fn` runs unlocked.
 */
export function withAttachmentLock<T>(conf: WeftConf, containerId: string, ifname: string, createDir: boolean, fn: () => T): T {
  return withFileLock(file(conf, containerId, ifname, ".lock"), lockOptions(conf, containerId, ifname, createDir), fn);
}

/** Like withAttachmentLock, for the agent: "busy", and `fn` not run, while another call holds it. */
export function tryAttachmentLock<T>(conf: WeftConf, containerId: string, ifname: string, fn: () => T): T | "busy" {
  return tryFileLock(file(conf, containerId, ifname, ".lock"), lockOptions(conf, containerId, ifname, false), fn);
}

function lockOptions(conf: WeftConf, containerId: string, ifname: string, createDir: boolean): LockOptions {
  const beforeRelease = () => {
    if (!exists(file(conf, containerId, ifname))) removeFile(file(conf, containerId, ifname, ".lock"), { force: true });
  };
  return { createDir, beforeRelease };
}

/** Saves the attachment; the caller holds its lock. */
export function saveDelegate(conf: WeftConf, containerId: string, ifname: string, netns: string, delegate: Record<string, unknown>): void {
  const saved: Saved = { netns, delegate };
  replaceFile(file(conf, containerId, ifname), (tmp) => writeText(tmp, JSON.stringify(saved)));
}

export function loadDelegate(conf: WeftConf, containerId: string, ifname: string): Record<string, unknown> | null {
  return loadAttachment(conf, containerId, ifname)?.delegate ?? null;
}

/** Forgets the attachment; the caller holds its lock (whose file then goes too). */
export function forgetDelegate(conf: WeftConf, containerId: string, ifname: string): void {
  removeFile(file(conf, containerId, ifname), { force: true });
}

/** The attachments of this network that have a saved file, by name (their files unread). */
export function savedAttachmentNames(conf: WeftConf): Attachment[] {
  let names: string[];
  try {
    names = listDir(attachmentsDir(conf));
  } catch {
    return [];
  }
  return names
    .filter(isSavedAttachment)
    .map((n) => n.slice(0, -SAVED.length).split(":"))
    .filter((parts) => parts.length === 3 && parts[0] === conf.name)
    .map(([, containerID, ifname]) => ({ containerID: containerID!, ifname: ifname! }));
}

/** Saved attachments of this network. */
export function savedAttachments(conf: WeftConf): SavedAttachment[] {
  return savedAttachmentNames(conf).map((a) => ({ ...a, saved: loadAttachment(conf, a.containerID, a.ifname) }));
}
