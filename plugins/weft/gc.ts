// Garbage collection of attachments: the CNI GC verb (the runtime names the attachments
// that are still valid; no runtime calls it yet) and the agent's own pass, which needs no
// runtime: an attachment whose pod netns no longer exists lost its DEL (a runtime crash,
// a forced removal), and would otherwise hold its IP until the node reboots.
import type { CniEnv } from "../../shared/cni/env";
import type { Attachment } from "../../shared/cni/skeleton";
import { closeFile, dirName, isDirectory, isFsErrno, openFile } from "../../shared/fs";
import { ipamGc } from "../../ipam/index";
import { parseBridgeConf } from "../bridge/config";
import { del as bridgeDel } from "../bridge/del";
import { delegateConf, readSubnet, type WeftConf } from "./config";
import { forgetDelegate, loadDelegate, savedAttachments, type SavedAttachment } from "./saved";

/**
 * Runs DEL for every saved attachment not in `valid` (its IP, its packet-filter rules;
 * its veth went with its netns), then releases any other reservation not in `valid`.
 * Returns the attachments it removed.
 */
export function collect(conf: WeftConf, raw: Record<string, unknown>, valid: readonly Attachment[]): SavedAttachment[] {
  const keep = new Set(valid.map((a) => `${a.containerID}:${a.ifname}`));
  const stale = savedAttachments(conf).filter((a) => !keep.has(`${a.containerID}:${a.ifname}`));
  for (const a of stale) {
    const delegate = loadDelegate(conf, a.containerID, a.ifname);
    if (delegate) {
      const env: CniEnv = { command: "DEL", containerId: a.containerID, netns: "", ifname: a.ifname, args: new Map(), path: [] };
      bridgeDel({ env, conf: parseBridgeConf(delegate, env.args), raw: delegate, stdinVersion: conf.cniVersion });
    }
    forgetDelegate(conf, a.containerID, a.ifname);
  }
  const subnet = readSubnet(conf);
  if (subnet) ipamGc(delegateConf(conf, subnet, raw), conf.name, valid);
  return stale;
}

/**
 * Whether the netns file at `path` is gone: the runtime deletes it when it tears the pod
 * down. Only a missing file in a directory we can see counts: an agent that does not see
 * the runtime's netns directory at all (a container without the hostPath mount), or sees
 * files no longer holding a namespace, keeps everything rather than guess.
 */
function netnsGone(path: string): boolean {
  try {
    closeFile(openFile(path, "r"));
    return false;
  } catch (e) {
    return isFsErrno(e, "ENOENT") && isDirectory(dirName(path));
  }
}

/**
 * The agent's GC pass: attachments whose netns is gone are collected. An attachment saved
 * without a netns is kept. Returns what was collected (nothing, and no IPAM scan, when
 * every attachment is alive).
 */
export function collectOrphans(conf: WeftConf): SavedAttachment[] {
  const saved = savedAttachments(conf);
  const alive = saved.filter((a) => !a.netns || !netnsGone(a.netns));
  if (alive.length === saved.length) return [];
  return collect(conf, {}, alive);
}
