// Garbage collection of attachments: the CNI GC verb (the runtime names the attachments
// that are still valid; no runtime calls it yet) and the agent's own pass, which needs no
// runtime: an attachment whose pod netns no longer exists lost its DEL (a runtime crash,
// a forced removal), and would otherwise hold its IP until the node reboots.
import type { CniEnv } from "../../shared/cni/env";
import type { Attachment } from "../../shared/cni/skeleton";
import { allSteps, attempt, labelled } from "../../shared/attempt";
import { isErrno } from "../../shared/errno";
import { removeFallbackPodRules } from "../../shared/firewall/index";
import { closeFile, dirName, isDirectory, openFile } from "../../shared/fs";
import { isOwnNetns } from "../../shared/netns";
import { gc as bridgeGc } from "../bridge/gc";
import { bridgeContext, delegateDel } from "./delegate";
import { delegateConf, readSubnet, type WeftConf } from "./config";
import { forgetDelegate, loadAttachment, savedAttachmentNames, tryAttachmentLock, withAttachmentLock, type SavedAttachment } from "./saved";

/**
 * DEL for one saved attachment, as the runtime would run it: its address, its packet-filter
 * rules, its veth if its netns still holds it; then its file.
 */
function delAttachment(conf: WeftConf, a: SavedAttachment): void {
  const { saved } = a;
  if (!saved) return forgetDelegate(conf, a.containerID, a.ifname);
  // A /proc/<pid>/ns/net path (cri-dockerd's) is not entered: its pid may be another pod's
  // process by now, whose eth0 this would delete (the pod's own veth went with its netns, or
  // goes when its process ends). Nor our own netns (one a runtime gave with
  // CNI_NETNS_OVERRIDE): DEL would refuse it, and fail the collection on every pass.
  const netns = saved.netns && !saved.netns.startsWith("/proc/") && !isOwnNetns(saved.netns) ? saved.netns : "";
  const env: CniEnv = { command: "DEL", containerId: a.containerID, netns, ifname: a.ifname, args: new Map(), path: [], netnsOverride: false };
  delegateDel({ env, conf, raw: saved.delegate, stdinVersion: conf.cniVersion }, saved.delegate);
}

const label = (a: Attachment): string => `${a.containerID}/${a.ifname}`;

/**
 * The GC verb: DEL for every saved attachment not in `valid` (each under its lock, as a
 * runtime's DEL), then the removal of any other address, rule or spoof check not in
 * `valid` (the runtime names every attachment it has, including any ADD it has in flight).
 * Every step runs; a delegate's CNI code ("try again later") reaches the runtime.
 */
export function collect(conf: WeftConf, raw: Record<string, unknown>, env: CniEnv, valid: readonly Attachment[]): void {
  const keep = new Set(valid.map(label));
  const stale = savedAttachmentNames(conf).filter((a) => !keep.has(label(a)));
  allSteps(
    // Read under the lock: the agent's pass may have collected it meanwhile.
    ...stale.map((a) => () => labelled(label(a), () => withAttachmentLock(conf, a.containerID, a.ifname, false, () => delAttachment(conf, { ...a, saved: loadAttachment(conf, a.containerID, a.ifname) })))),
    // Then the bridge's own GC: the rules, spoof checks and addresses of every attachment
    // not in `valid` (those whose saved config is gone too).
    () => {
      const subnet = readSubnet(conf);
      if (subnet) bridgeGc({ ...bridgeContext({ env, conf, raw, stdinVersion: conf.cniVersion }, delegateConf(conf, subnet, raw)), validAttachments: valid });
    },
  );
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
    return isErrno(e, "ENOENT") && isDirectory(dirName(path));
  }
}

/**
 * The agent's pass: DEL for each saved attachment whose netns is gone, and nothing else
 * (an ADD or DEL in flight meanwhile is never touched). Each is re-read and its netns
 * looked for again under the attachment's lock, and its DEL runs under it, so an
 * attachment a new ADD took over (same container and ifname, a new netns or the same path
 * made again) is left alone. The lock is only tried: while a plugin holds it, the pass
 * leaves the attachment to the next one rather than stall the agent.
 * Returns what it removed, what a plugin held (busy) and what it could not (one line each).
 */
export function collectOrphans(conf: WeftConf, attachments: SavedAttachment[]): { removed: SavedAttachment[]; busy: SavedAttachment[]; failed: string[] } {
  const orphans = attachments.filter((a) => a.saved?.netns !== undefined && netnsGone(a.saved.netns));
  const removed: SavedAttachment[] = [];
  const busy: SavedAttachment[] = [];
  const failed: string[] = [];
  for (const a of orphans) {
    attempt(
      failed,
      () => {
        const held = tryAttachmentLock(conf, a.containerID, a.ifname, () => {
          const now = loadAttachment(conf, a.containerID, a.ifname);
          if (now?.netns === undefined || !netnsGone(now.netns)) return;
          // The agent runs with its own PATH, which may have had `nft` where the plugin's,
          // on the host, did not: the iptables fallback's rules go too. Before the DEL, which
          // forgets the attachment last: a failure of either leaves it for the next pass.
          removeFallbackPodRules({ network: conf.name, containerId: a.containerID, ifname: a.ifname });
          delAttachment(conf, { ...a, saved: now });
          removed.push(a);
        });
        if (held === "busy") busy.push(a);
      },
      label(a),
    );
  }
  return { removed, busy, failed };
}
