// The same-node fast path (fastpath-program.ts): loaded once per agent, then kept level
// with the node's pods on every reconcile. The program is on the ingress of each pod's
// host-side veth; its map says which host veth holds each pod's MAC. Both come from the
// pods weft attached (their saved attachments), never from traffic, so a pod's entry is
// there from its first packet until its DEL, and one whose netns is gone is dropped.
// A map entry can only send a frame to the port its MAC lives on, as the bridge would;
// a stale one (its pod gone) only drops frames the bridge could not deliver either.
import { readFileSync } from "node:fs";
import { formatMac, parseMac } from "../shared/mac";
import { getLinkByName, listLinks, type Link } from "../shared/netlink/link";
import { withSocket } from "../shared/netlink/socket";
import { findBtfTypes, KIND_FUNC, KIND_STRUCT, type BtfType } from "../shared/bpf/btf";
import * as bpf from "../shared/bpf/syscall";
import { closeFile } from "../shared/fs";
import { messageOf } from "../shared/cni/errors";
import { savedAttachments } from "../plugins/weft/saved";
import type { WeftConf } from "../plugins/weft/config";
import { fastPathProgram } from "./fastpath-program";

/** The program's name: how a restarted agent knows the programs an earlier one attached. */
export const FAST_PATH_PROGRAM = "weft_fastpath";
const MAP_ENTRIES = 4096;
const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";

/** A pod of this node: its MAC and the ifindex of its host-side veth. */
interface Port {
  mac: string;
  hostIndex: number;
}

export class SameNodeFastPath {
  private constructor(
    private readonly mapFd: number,
    private readonly progFd: number,
    private readonly progId: number,
  ) {}

  /**
   * Loads the map and the program, or says why this kernel cannot take them (the bridge
   * then carries same-node traffic as before): conntrack's kfuncs (Linux 6.0, nf_conntrack
   * built in), tcx (6.6), CAP_BPF and CAP_NET_ADMIN.
   */
  static load(): SameNodeFastPath | string {
    const [lookup, release, opts] = [`${KIND_FUNC}:bpf_skb_ct_lookup`, `${KIND_FUNC}:bpf_ct_release`, `${KIND_STRUCT}:bpf_ct_opts`];
    let types: Map<string, BtfType>;
    try {
      types = findBtfTypes(readFileSync(VMLINUX_BTF), [lookup, release, opts]);
    } catch (e) {
      return `no kernel BTF (${VMLINUX_BTF}): ${messageOf(e)}`;
    }
    const [ctLookup, ctRelease, optsSize] = [types.get(lookup)?.id, types.get(release)?.id, types.get(opts)?.sizeOrType];
    if (!ctLookup || !ctRelease || !optsSize) return "the kernel's BTF has no bpf_skb_ct_lookup (Linux 6.0+, nf_conntrack built in)";
    let mapFd: number | undefined;
    try {
      mapFd = bpf.mapCreate(bpf.BPF_MAP_TYPE_HASH, 6, 4, MAP_ENTRIES, "weft_pods");
      const progFd = bpf.progLoad({
        type: bpf.BPF_PROG_TYPE_SCHED_CLS,
        insns: fastPathProgram({ mapFd, ctLookup, ctRelease, optsSize }),
        // Conntrack's kfuncs are for GPL-compatible programs; weft's Apache-2.0 is not one.
        license: "Dual MIT/GPL",
        name: FAST_PATH_PROGRAM,
        expectedAttachType: bpf.BPF_TCX_INGRESS,
      });
      return new SameNodeFastPath(mapFd, progFd, bpf.progInfo(progFd).id);
    } catch (e) {
      if (mapFd !== undefined) closeFile(mapFd);
      return messageOf(e);
    }
  }

  /**
   * Makes the map hold exactly this node's pods and the program sit on each one's host
   * veth (in place of an earlier agent's, at once, so no packet misses it). Returns one
   * line per change.
   */
  converge(conf: WeftConf): string[] {
    const changes: string[] = [];
    const pods = podPorts(conf);
    const want = new Map(pods.map((p) => [p.mac, p]));
    for (const key of bpf.mapKeys(this.mapFd, 6)) {
      const mac = formatMac(key);
      if (want.has(mac)) continue;
      bpf.mapDelete(this.mapFd, key);
      changes.push(`fast path: forgot pod ${mac}`);
    }
    const value = new Uint8Array(4);
    for (const p of pods) {
      new DataView(value.buffer).setUint32(0, p.hostIndex, true);
      bpf.mapUpdate(this.mapFd, parseMac(p.mac), value);
    }
    for (const p of pods) if (this.attach(p.hostIndex)) changes.push(`fast path: on the veth of pod ${p.mac} (ifindex ${p.hostIndex})`);
    return changes;
  }

  /** Puts the program on a host veth's ingress; false when it was there already. */
  private attach(ifindex: number): boolean {
    const ids = bpf.tcxQuery(ifindex, bpf.BPF_TCX_INGRESS);
    if (ids.includes(this.progId)) return false;
    for (const id of ids) {
      const fd = bpf.progFdById(id);
      try {
        if (bpf.progInfo(fd).name !== FAST_PATH_PROGRAM) continue;
        bpf.tcxAttach(this.progFd, ifindex, bpf.BPF_TCX_INGRESS, fd);
        return true;
      } finally {
        closeFile(fd);
      }
    }
    bpf.tcxAttach(this.progFd, ifindex, bpf.BPF_TCX_INGRESS);
    return true;
  }
}

/**
 * This node's weft pods, each found through its saved netns: the MAC of its interface and
 * that veth's peer here, when the peer is a port of the pods' bridge.
 */
function podPorts(conf: WeftConf): Port[] {
  const ports: Port[] = [];
  const { bridge, hostLinks } = withSocket(undefined, (nl) => {
    const links = listLinks(nl);
    return { bridge: links.find((l) => l.name === conf.bridge), hostLinks: new Map(links.map((l) => [l.index, l])) };
  });
  if (!bridge) return ports;
  for (const a of savedAttachments(conf)) {
    const netns = a.saved?.netns;
    if (!netns) continue;
    let pod: Link | null;
    try {
      pod = withSocket(netns, (nl) => getLinkByName(nl, a.ifname));
    } catch {
      continue; // its netns is gone: the agent's GC takes it
    }
    const host = pod?.peerIndex === undefined ? undefined : hostLinks.get(pod.peerIndex);
    if (pod && host?.kind === "veth" && host.master === bridge.index) ports.push({ mac: pod.mac, hostIndex: host.index });
  }
  return ports;
}
