// Host-side packet filtering for the bridge plugin, run in the host network namespace:
//
// - ipMasq: traffic from a pod address to anything outside the pod's subnet, except
//   multicast, leaves with the host's address (masquerade); pod-to-pod within the subnet
//   keeps its source address.
// - forward accept: pod traffic must cross the FORWARD hook even where Docker set iptables'
//   FORWARD policy to DROP.
//
// With `nft` on PATH everything pod-specific is elements of the table `inet weft` (at most one
// `nft -f -` batch per ADD/DEL, see nft.ts) plus one static iptables rule accepting marked
// pod traffic (iptables.ts), both only where needed: what exists and whether FORWARD drops is
// read over netlink first, so that ADD and DEL spawn nothing when there is nothing to do.
// Without `nft`, per-pod iptables chains like the reference plugins.
import { allSteps } from "../attempt";
import { countMatching, dumpRules, NFPROTO, withNetfilter } from "../netlink/nftables";
import type { NetlinkMessage, NetlinkSocket } from "../netlink/socket";
import { which, type Running } from "../process";
import { type Keep, marksNote, type Pod, type PodAddr, parseIp, parsePodCidr, podKey, staleIn } from "./common";
import * as iptables from "./iptables";
import * as nft from "./nft";

/** A chain by table and name, in nftables family ip. */
export interface ChainRef {
  table: string;
  chain: string;
}

export interface PodRuleSpec {
  network: string; // CNI network name (conf "name")
  containerId: string;
  ifname: string;
  /** the pod's addresses with their prefix, as in the CNI result ("10.1.0.2/24") */
  cidrs: string[];
  masquerade: boolean; // conf ipMasq
  /**
   * An IPv4 chain (nftables family ip) that may already mark the pod's traffic for FORWARD
   * accept (the weft agent's): while rules there mark the pod's IPv4 subnet (marksNote), the
   * pod needs no IPv4 mark of its own. Only the nft backend reads it: the iptables fallback
   * always accepts each pod's traffic with rules of its own in WEFT-FORWARD.
   */
  markedBy?: ChainRef;
}

export interface PodRuleRef {
  network: string;
  containerId: string;
  ifname: string;
  ips?: string[]; // unknown when the netns is gone and there is no prevResult
}

/** Installs the pod's rules. Throws (leaving nothing of this pod behind) when that fails. */
export function addPodRules(spec: PodRuleSpec): void {
  const pod: Pod = {
    key: podKey(spec.network, spec.containerId, spec.ifname),
    addrs: spec.cidrs.map(parsePodCidr),
  };
  if (which("nft")) {
    withNetfilter((nl) => {
      // The static rule first: it is not the pod's, so a failure after it leaves nothing of the pod.
      const marked = iptables.forwardAccept(nl, new Set(pod.addrs.map((a) => a.family)));
      const by = spec.markedBy;
      if (by && marked.has(4) && marksSubnets(nl, by, pod.addrs)) marked.delete(4);
      nft.addPod(nl, pod, spec.masquerade, marked);
    });
  } else {
    iptables.addPod(pod, spec.masquerade);
  }
}

/**
 * Whether `by` has a rule for each of the pod's IPv4 subnets: one whose comment ends with
 * marksNote(subnet) (the kernel keeps a comment NUL-terminated; subnets are canonical).
 */
function marksSubnets(nl: NetlinkSocket, by: ChainRef, addrs: PodAddr[]): boolean {
  let rules: NetlinkMessage[] | undefined;
  for (const a of addrs) {
    if (a.family !== 4) continue;
    rules ??= dumpRules(nl, NFPROTO.IPV4, by.table, by.chain);
    if (countMatching(rules, ` ${marksNote(a.subnet!)}\0`) === 0) return false;
  }
  return rules !== undefined;
}

/**
 * Removes the pod's rules; succeeds when there are none. Without `ips`, finds them by pod.
 * `meanwhile` runs while `nft` does: a batch that deletes waits out an RCU grace period
 * (~20 ms, see nft.ts), so DEL deletes the veth in that time. Each part runs even when
 * another failed.
 */
export function removePodRules(ref: PodRuleRef, meanwhile: () => void = () => {}): void {
  let key = "";
  let running: Running | undefined;
  allSteps(
    () => {
      const pod: Pod = { key: podKey(ref.network, ref.containerId, ref.ifname), addrs: (ref.ips ?? []).map(parseIp) };
      key = pod.key;
      const known = pod.addrs.length > 0;
      if (!which("nft")) return iptables.removePod(pod, known);
      // Our netfilter socket is closed before nft commits: releasing one while the kernel
      // still has deleted objects to free waits for them.
      const batch = withNetfilter((nl) => nft.removalBatch(nl, pod, known));
      if (batch !== null) running = nft.startBatch(batch);
    },
    meanwhile,
    () => {
      if (running) nft.mustFinish(`removing nftables rules for pod ${key}`, running);
    },
  );
}

/**
 * GC: removes the rules of every pod of the network that `keep` does not list, so a pod whose
 * DEL never came leaks no NAT or forward rule.
 */
export function removeStalePodRules(keep: Keep): void {
  const isStale = staleIn(keep);
  if (!which("nft")) return iptables.removeStalePods(isStale);
  const batch = withNetfilter((nl) => nft.staleRemovalBatch(nl, isStale));
  if (batch !== null) nft.mustRunBatch("removing nftables rules of pods gone", batch);
}

/**
 * Removes a pod's rules from the iptables fallback too, where we find `nft`: for clean-up
 * run outside the plugin (the agent's GC, in its own container), which cannot know whether
 * the plugin, on the host, found `nft` or fell back to iptables.
 */
export function removeFallbackPodRules(ref: Omit<PodRuleRef, "ips">): void {
  if (!which("nft")) return; // then removePodRules() used the fallback already
  // Found by the pod's comment, in each family whose iptables-save exists.
  iptables.removePod({ key: podKey(ref.network, ref.containerId, ref.ifname), addrs: [] }, false);
}

