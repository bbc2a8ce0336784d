// The fast path (fastpath-program.ts): loaded once per agent, then kept level with the
// node's pods and peers on every reconcile. The program is on the ingress of each pod's
// host-side veth, of the underlay interface and of the VXLAN device. Its `pods` map says
// which host veth holds each pod's address (with the pod's MAC and its gateway's, the
// bridge's); both come from the pods
// weft attached (their saved attachments and the interface in each pod's netns), never
// from traffic; a pod whose netns is gone is dropped. Its `peers` map holds the other
// nodes' pod CIDRs, from the node list.
// A pod's address is in the map exactly while a fast path program is on its own veth (ours,
// or during a restart an earlier agent's), and the peers only while one is on the underlay
// and the VXLAN device: so both directions of a flow skip the kernel's forwarding or
// neither does, and conntrack sees all of it or none of it.
import { parseMac } from "../shared/mac";
import { addressBytes, addressOf, ipToBytes, parseCIDR } from "../shared/ip";
import { listAddresses } from "../shared/netlink/address";
import { getLinkByName, listLinks, type Link } from "../shared/netlink/link";
import { u32 } from "../shared/netlink/encoding";
import { withSocket } from "../shared/netlink/socket";
import { findBtfTypesIn, KIND_FUNC, KIND_STRUCT, type BtfType } from "../shared/bpf/btf";
import * as bpf from "../shared/bpf/syscall";
import { closeFile } from "../shared/fs";
import { isNetnsGone } from "../shared/netns";
import { deleted, isErrno } from "../shared/errno";
import { attempt } from "../shared/attempt";
import { messageOf } from "../shared/cni/errors";
import type { SavedAttachment } from "../plugins/weft/saved";
import type { WeftConf } from "../plugins/weft/config";
import { fastPathProgram, FAST_PATH_LICENSE, PEER_ENTRY, POD_VALUE } from "./fastpath-program";

/** The program's name: how an agent knows the programs an earlier one attached. */
export const FAST_PATH_PROGRAM = "weft_fastpath";
const MAP_ENTRIES = 4096;
const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";
/** How long a pod whose ADD has not made its interface yet is looked for every 100 ms (then at the resync). */
const WAIT_MS = 5000;

/** A pod of this node: its IPv4 addresses, its MAC, the ifindex of its host-side veth, and its gateway's MAC (the bridge's). */
interface Port {
  ips: string[];
  mac: string;
  hostIndex: number;
  gatewayMac: string;
}

/** What the overlay gives the fast path: the devices traffic from other nodes comes in by, and those nodes' pod CIDRs. */
export interface CrossNode {
  /** the underlay interface and the VXLAN device */
  ins: Array<{ index: number; name: string }>;
  /** each other node's pod CIDR, and the ifindex of the device (one of `ins`) its traffic comes in by */
  peers: Map<string, number>;
}

export interface FastPathRun {
  changes: string[];
  problems: string[];
  /** a pod's ADD is still making its interface: look again soon */
  waiting: boolean;
}

export class FastPath {
  /** per attachment ("containerID/ifname") whose interface is not there yet: when it was first looked for */
  private readonly waitingSince = new Map<string, number>();
  /** the devices this agent put its program on */
  private readonly attached = new Set<number>();
  /** what the maps hold (only this agent writes them): pod address -> its entry; pod CIDR -> the ifindex its traffic comes in by */
  private readonly pods = new Map<string, string>();
  private readonly peers = new Map<string, number>();
  /**
   * Whether the devices that are neither a pod's veth nor a way in have been cleared of
   * earlier agents' programs: once, as only an agent run with another --iface or --vni can
   * have left any there (on its underlay or VXLAN device).
   */
  private straysGone = false;

  private constructor(
    private readonly podsFd: number,
    private readonly peersFd: number,
    private readonly progFd: number,
    private readonly progId: number,
  ) {}

  /**
   * Loads the maps and the program, or says why this kernel cannot take them (the kernel's
   * own forwarding then carries everything as before): tcx (Linux 6.6), conntrack's kfuncs
   * in the kernel's own BTF (nf_conntrack built in), CAP_BPF, CAP_NET_ADMIN, and
   * CAP_SYS_ADMIN to find the programs an earlier agent attached.
   */
  static load(): FastPath | string {
    const [lookup, release, opts] = [`${KIND_FUNC}:bpf_skb_ct_lookup`, `${KIND_FUNC}:bpf_ct_release`, `${KIND_STRUCT}:bpf_ct_opts`];
    let types: Map<string, BtfType>;
    try {
      types = findBtfTypesIn(VMLINUX_BTF, [lookup, release, opts]);
    } catch (e) {
      return `no kernel BTF (${VMLINUX_BTF}): ${messageOf(e)}`;
    }
    const [ctLookup, ctRelease, optsSize] = [types.get(lookup)?.id, types.get(release)?.id, types.get(opts)?.sizeOrType];
    if (!ctLookup || !ctRelease || !optsSize) return "the kernel's BTF has no bpf_skb_ct_lookup (Linux 6.0+, nf_conntrack built in)";
    const fds: number[] = [];
    try {
      const podsFd = bpf.mapCreate(bpf.BPF_MAP_TYPE_HASH, POD_VALUE.keySize, POD_VALUE.size, MAP_ENTRIES, "weft_pods");
      fds.push(podsFd);
      const peersFd = bpf.mapCreate(bpf.BPF_MAP_TYPE_LPM_TRIE, PEER_ENTRY.keySize, PEER_ENTRY.valueSize, MAP_ENTRIES, "weft_peers", bpf.BPF_F_NO_PREALLOC);
      fds.push(peersFd);
      const progFd = bpf.progLoad({
        type: bpf.BPF_PROG_TYPE_SCHED_CLS,
        insns: fastPathProgram({ podsFd, peersFd, ctLookup, ctRelease, optsSize }),
        license: FAST_PATH_LICENSE,
        name: FAST_PATH_PROGRAM,
        expectedAttachType: bpf.BPF_TCX_INGRESS,
      });
      fds.push(progFd);
      const id = bpf.progInfo(progFd).id;
      // What finding an earlier agent's programs takes (CAP_SYS_ADMIN), asked now, not per pod later.
      closeFile(bpf.progFdById(id));
      return new FastPath(podsFd, peersFd, progFd, id);
    } catch (e) {
      for (const fd of fds) closeFile(fd);
      return `${messageOf(e)}${isErrno(e, "EPERM") ? " (it needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)" : ""}`;
    }
  }

  /**
   * Puts the program on the underlay, the VXLAN device and each pod's host veth (in place
   * of an earlier agent's, at once, so no packet misses it), the pods and peers in the
   * maps, and takes gone ones out. What an earlier agent's program serves is in the maps
   * before ours replaces it: no flow it carried falls back to the kernel midway (conntrack
   * would take it up there).
   */
  converge(conf: WeftConf, cross: CrossNode, attachments: SavedAttachment[]): FastPathRun {
    const run: FastPathRun = { changes: [], problems: [], waiting: false };
    const node = bridgeLinks(conf);
    const ports = this.podPorts(node, attachments, run);

    // Phase one: what an earlier agent's programs serve goes in our maps.
    const ins: Array<[CrossNode["ins"][number], Programs]> = [];
    for (const dev of cross.ins) attempt(run.problems, () => ins.push([dev, programsOn(dev.index, this.progId)]), `fast path: ${dev.name}`);
    // The peers only while a program is on every way in (a VXLAN device made anew has none).
    const covered = ins.length === cross.ins.length && ins.every(([, on]) => on.ours || on.earlier.length > 0);
    this.putPeers(covered ? cross.peers : new Map(), run);
    // Addresses whose veth could not be asked: left as they are in the map, until a run can.
    const unknown = new Set<string>();
    const found: Array<[Port, Programs]> = [];
    for (const p of ports) {
      try {
        const on = programsOn(p.hostIndex, this.progId);
        found.push([p, on]);
        if (!on.ours && on.earlier.length) this.put(p, run);
      } catch (e) {
        run.problems.push(`fast path: pod ${p.ips.join(",")}: ${messageOf(e)}`);
        p.ips.forEach((ip) => unknown.add(ip));
      }
    }

    // Phase two: ours on every pod's veth, then on the ways in, and the maps level. (Pods
    // first: an earlier agent's program on a veth may know nothing of other nodes.)
    const on = new Set(unknown);
    for (const [p, was] of found) {
      if (this.own(p.hostIndex, was, `the veth of pod ${p.ips.join(",")}`, run) && this.put(p, run)) p.ips.forEach((ip) => on.add(ip));
    }
    let insOn = ins.length === cross.ins.length;
    for (const [dev, was] of ins) insOn = this.own(dev.index, was, dev.name, run) && insOn;
    // Without the program on every way in, replies from other nodes would meet conntrack
    // mid-flow: no cross-node flow takes the fast path then.
    this.putPeers(insOn ? cross.peers : new Map(), run);
    this.forgetPodsBut(on, run);
    // A device no pod of ours is on any more (one taken off the bridge), or a VXLAN device
    // since replaced, loses the program.
    const current = new Set([...ports.map((p) => p.hostIndex), ...cross.ins.map((d) => d.index)]);
    for (const index of this.attached) {
      if (current.has(index)) continue;
      attempt(
        run.problems,
        () => {
          if (deleted(["ENODEV", "ENOENT"], () => bpf.tcxDetach(this.progFd, index, bpf.BPF_TCX_INGRESS))) {
            run.changes.push(`fast path: off ifindex ${index}, no pod's veth or way in now`);
          }
          this.attached.delete(index);
        },
        `fast path: ifindex ${index}`,
      );
    }
    if (!this.straysGone) {
      attempt(run.problems, () => {
        const strays = node.links.filter((l) => !current.has(l.index) && !isBridgePort(l, node.bridge)).map((l) => ({ index: l.index, name: l.name }));
        run.changes.push(...takeOffEarlier(strays, this.progId, "no pod's veth or way in now"));
        this.straysGone = true;
      }, "fast path: earlier agents' programs on other devices");
    }
    return run;
  }

  /**
   * Ours on a device (takeOver), logged; whether ours is on it. Where it cannot be put on,
   * an earlier agent's program comes off too: its maps are nobody's now, and the flows it
   * took past conntrack would meet it only one way.
   */
  private own(ifindex: number, was: Programs, name: string, run: FastPathRun): boolean {
    try {
      const change = this.takeOver(ifindex, was);
      if (change) run.changes.push(`fast path: ${change} ${name} (ifindex ${ifindex})`);
      return true;
    } catch (e) {
      run.problems.push(`fast path: ${name}: ${messageOf(e)}`);
      if (stillOurs(ifindex, this.progId)) return true;
      for (const id of was.earlier) attempt(run.problems, () => detach(id, ifindex), `fast path: ${name}: the earlier agent's program`);
      return false;
    }
  }

  /** The pod's addresses into the map (where not there already), for its host veth; false when the map refused one. */
  private put(p: Port, run: FastPathRun): boolean {
    const value = new Uint8Array(POD_VALUE.size);
    new DataView(value.buffer).setUint32(POD_VALUE.hostIndex, p.hostIndex, true);
    value.set(parseMac(p.mac), POD_VALUE.mac);
    value.set(parseMac(p.gatewayMac), POD_VALUE.gatewayMac);
    const entry = value.join(",");
    let ok = true;
    for (const ip of p.ips) {
      if (this.pods.get(ip) === entry) continue;
      const done = attempt(
        run.problems,
        () => {
          bpf.mapUpdate(this.podsFd, addressBytes(ip), value);
          this.pods.set(ip, entry);
        },
        `fast path: pod ${ip}`,
      );
      ok &&= done;
    }
    return ok;
  }

  /** Takes every pod address but `keep` out of the map. */
  private forgetPodsBut(keep: Set<string>, run: FastPathRun): void {
    for (const ip of this.pods.keys()) {
      if (keep.has(ip)) continue;
      attempt(
        run.problems,
        () => {
          bpf.mapDelete(this.podsFd, addressBytes(ip));
          this.pods.delete(ip);
          run.changes.push(`fast path: forgot pod ${ip}`);
        },
        `fast path: pod ${ip}`,
      );
    }
  }

  /** The peers map holding exactly `want` (pod CIDR -> the ifindex its traffic comes in by). */
  private putPeers(want: Map<string, number>, run: FastPathRun): void {
    for (const cidr of this.peers.keys()) {
      if (want.has(cidr)) continue;
      attempt(
        run.problems,
        () => {
          bpf.mapDelete(this.peersFd, peerKey(cidr));
          this.peers.delete(cidr);
          run.changes.push(`fast path: off for pods in ${cidr}`);
        },
        `fast path: ${cidr}`,
      );
    }
    for (const [cidr, via] of want) {
      if (this.peers.get(cidr) === via) continue;
      attempt(
        run.problems,
        () => {
          bpf.mapUpdate(this.peersFd, peerKey(cidr), u32(via));
          this.peers.set(cidr, via);
          run.changes.push(`fast path: on for pods in ${cidr} (in by ifindex ${via})`);
        },
        `fast path: ${cidr}`,
      );
    }
  }

  /**
   * Ours on a device's ingress, in place of an earlier agent's, and no other of weft's:
   * what changed ("on", "kept on"), or undefined when it was so.
   */
  private takeOver(ifindex: number, was: Programs): string | undefined {
    let rest = was.earlier;
    if (!was.ours) {
      const [first, ...others] = was.earlier;
      // false when that program went meanwhile: then ours goes on beside nothing of weft's.
      const replaced = first !== undefined && withProgram(first, (fd) => (bpf.tcxAttach(this.progFd, ifindex, bpf.BPF_TCX_INGRESS, fd), true));
      if (!replaced) bpf.tcxAttach(this.progFd, ifindex, bpf.BPF_TCX_INGRESS);
      rest = others;
    }
    this.attached.add(ifindex);
    for (const id of rest) detach(id, ifindex);
    if (!was.ours) return "on";
    return rest.length ? "a stray program off" : undefined;
  }

  /**
   * This node's weft pods, each found through its saved netns: the addresses and MAC of its
   * interface and that veth's peer here, when the peer is a port of the pods' bridge. A pod
   * whose netns is there but not yet its interface (its ADD is under way: the attachment
   * is saved first) makes the run `waiting`.
   */
  private podPorts({ bridge, links }: NodeLinks, attachments: SavedAttachment[], run: FastPathRun): Port[] {
    const ports: Port[] = [];
    const hostLinks = new Map(links.map((l) => [l.index, l]));
    const seen = new Set<string>();
    for (const a of attachments) {
      const netns = a.saved?.netns;
      if (!netns) continue;
      let pod: { link: Link; ips: string[] } | null;
      try {
        pod = withSocket(netns, (nl) => {
          const link = getLinkByName(nl, a.ifname);
          return link && { link, ips: listAddresses(nl, link.index, 4).map((x) => addressOf(x.cidr)) };
        });
      } catch (e) {
        if (!isNetnsGone(e)) run.problems.push(`fast path: ${netns}: ${messageOf(e)}`);
        continue; // a netns gone is the agent's GC's to collect
      }
      const key = `${a.containerID}/${a.ifname}`;
      seen.add(key);
      const host = pod?.link.peerIndex === undefined ? undefined : hostLinks.get(pod.link.peerIndex);
      if (pod && pod.ips.length && bridge && host && isBridgePort(host, bridge)) {
        ports.push({ ips: pod.ips, mac: pod.link.mac, hostIndex: host.index, gatewayMac: bridge.mac });
        this.waitingSince.delete(key);
        continue;
      }
      const since = this.waitingSince.get(key) ?? Date.now();
      this.waitingSince.set(key, since);
      if (Date.now() - since < WAIT_MS) run.waiting = true;
    }
    for (const key of this.waitingSince.keys()) if (!seen.has(key)) this.waitingSince.delete(key);
    return ports;
  }
}

/** A `peers` key (PEER_ENTRY): { u32 prefix length (host order), the network's four bytes }. */
function peerKey(cidr: string): Uint8Array {
  const net = parseCIDR(cidr)!;
  return Buffer.concat([u32(net.prefix), ipToBytes(net.ip)]);
}

/** Whether `l` is a veth on the pods' bridge: a pod's host side. */
function isBridgePort(l: Link, bridge: Link | undefined): boolean {
  return bridge !== undefined && l.kind === "veth" && l.master === bridge.index;
}

/** The node's links, and among them the pods' bridge (undefined before the first pod's ADD makes it). */
interface NodeLinks {
  bridge: Link | undefined;
  links: Link[];
}

/** The node's links now, and its pods' bridge among them. */
function bridgeLinks(conf: WeftConf): NodeLinks {
  const links = withSocket(undefined, listLinks);
  return { bridge: links.find((l) => l.name === conf.bridge), links };
}

/** The fast path programs on a device's ingress: whether ours (`ours`, an ID) is, and earlier agents'. */
interface Programs {
  ours: boolean;
  earlier: number[];
}

function programsOn(ifindex: number, ours?: number): Programs {
  const ids = bpf.tcxQuery(ifindex, bpf.BPF_TCX_INGRESS);
  const earlier = ids.filter((id) => id !== ours && withProgram(id, (fd) => bpf.progInfo(fd).name === FAST_PATH_PROGRAM) === true);
  return { ours: ours !== undefined && ids.includes(ours), earlier };
}

/** Whether ours is on a device after a failure there; false if that cannot be told. */
function stillOurs(ifindex: number, ours: number): boolean {
  try {
    return bpf.tcxQuery(ifindex, bpf.BPF_TCX_INGRESS).includes(ours);
  } catch {
    return false;
  }
}

/** Takes the loaded program `id` off a device's ingress; false when the program is gone. */
function detach(id: number, ifindex: number): boolean {
  return withProgram(id, (fd) => (bpf.tcxDetach(fd, ifindex, bpf.BPF_TCX_INGRESS), true));
}

/** `fn` with an fd of the loaded program `id`; false when it is gone. */
function withProgram<T>(id: number, fn: (fd: number) => T): T | false {
  let fd: number;
  try {
    fd = bpf.progFdById(id);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return false;
    throw e;
  }
  try {
    return fn(fd);
  } finally {
    closeFile(fd);
  }
}

/**
 * Takes the programs earlier agents put on any of the node's devices (the bridge's ports,
 * an underlay, a VXLAN device) off them: with `--fast-path never`, or where this agent
 * cannot load its own (they would go on with maps nobody keeps).
 */
export function removeFastPath(conf: WeftConf): string[] {
  const { bridge, links } = bridgeLinks(conf);
  return takeOffEarlier(links.map((l) => ({ index: l.index, name: isBridgePort(l, bridge) ? `the veth ${l.name}` : l.name })));
}

/** Takes earlier agents' programs (any but `ours`, an ID) off `devs`; a line for each taken off, with `why` if given. */
function takeOffEarlier(devs: Array<{ index: number; name: string }>, ours?: number, why?: string): string[] {
  const changes: string[] = [];
  for (const dev of devs) {
    try {
      for (const id of programsOn(dev.index, ours).earlier) {
        if (detach(id, dev.index)) changes.push(`fast path: off ${dev.name}${why ? `, ${why}` : ""}`);
      }
    } catch (e) {
      // No tcx (before Linux 6.6) or no bpf(2) here, or not allowed it: nothing to take off
      // there, or nothing this agent can do. ENODEV: the device went meanwhile.
      if (!["EINVAL", "ENOSYS", "EPERM", "ENODEV"].some((code) => isErrno(e, code))) throw e;
    }
  }
  return changes;
}
