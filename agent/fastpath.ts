// The same-node fast path (fastpath-program.ts): loaded once per agent, then kept level
// with the node's pods on every reconcile. The program is on the ingress of each pod's
// host-side veth; its map says which host veth holds each pod's MAC. Both come from the
// pods weft attached (their saved attachments and the interface in each pod's netns),
// never from traffic; a pod whose netns is gone is dropped.
// A pod's MAC is in the map exactly while a fast path program is on its own veth (ours, or
// during a restart an earlier agent's), so between two pods either both directions of a
// flow skip the bridge or neither does: conntrack sees all of it or none of it.
import { readSync } from "node:fs";
import { formatMac, parseMac } from "../shared/mac";
import { getLinkByName, listLinks, type Link } from "../shared/netlink/link";
import { withSocket } from "../shared/netlink/socket";
import { findBtfTypes, KIND_FUNC, KIND_STRUCT, type BtfType } from "../shared/bpf/btf";
import * as bpf from "../shared/bpf/syscall";
import { closeFile, openFile } from "../shared/fs";
import { isNetnsGone } from "../shared/netns";
import { isErrno } from "../shared/errno";
import { messageOf } from "../shared/cni/errors";
import { savedAttachments } from "../plugins/weft/saved";
import type { WeftConf } from "../plugins/weft/config";
import { fastPathProgram, FAST_PATH_LICENSE } from "./fastpath-program";

/** The program's name: how an agent knows the programs an earlier one attached. */
export const FAST_PATH_PROGRAM = "weft_fastpath";
const MAP_ENTRIES = 4096;
const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";
/** How long a pod whose ADD has not made its interface yet is looked for every 100 ms (then at the resync). */
const WAIT_MS = 5000;

/** A pod of this node: its MAC and the ifindex of its host-side veth. */
interface Port {
  mac: string;
  hostIndex: number;
}

export interface FastPathRun {
  changes: string[];
  problems: string[];
  /** a pod's ADD is still making its interface: look again soon */
  waiting: boolean;
}

export class SameNodeFastPath {
  /** per attachment ("containerID/ifname") whose interface is not there yet: when it was first looked for */
  private readonly waitingSince = new Map<string, number>();
  /** the host veths this agent put its program on */
  private readonly attached = new Set<number>();

  private constructor(
    private readonly mapFd: number,
    private readonly progFd: number,
    private readonly progId: number,
  ) {}

  /**
   * Loads the map and the program, or says why this kernel cannot take them (the bridge
   * then carries same-node traffic as before): tcx (Linux 6.6), conntrack's kfuncs in the
   * kernel's own BTF (nf_conntrack built in), CAP_BPF, CAP_NET_ADMIN, and CAP_SYS_ADMIN to
   * find the programs an earlier agent attached.
   */
  static load(): SameNodeFastPath | string {
    const [lookup, release, opts] = [`${KIND_FUNC}:bpf_skb_ct_lookup`, `${KIND_FUNC}:bpf_ct_release`, `${KIND_STRUCT}:bpf_ct_opts`];
    let types: Map<string, BtfType>;
    let fd: number | undefined;
    try {
      const btf = (fd = openFile(VMLINUX_BTF, "r"));
      types = findBtfTypes((position, length) => {
        // sysfs hands out a page per read.
        const b = Buffer.alloc(length);
        let got = 0;
        for (let n = 1; got < length && n > 0; got += n) n = readSync(btf, b, got, length - got, position + got);
        return b.subarray(0, got);
      }, [lookup, release, opts]);
    } catch (e) {
      return `no kernel BTF (${VMLINUX_BTF}): ${messageOf(e)}`;
    } finally {
      if (fd !== undefined) closeFile(fd);
    }
    const [ctLookup, ctRelease, optsSize] = [types.get(lookup)?.id, types.get(release)?.id, types.get(opts)?.sizeOrType];
    if (!ctLookup || !ctRelease || !optsSize) return "the kernel's BTF has no bpf_skb_ct_lookup (Linux 6.0+, nf_conntrack built in)";
    const fds: number[] = [];
    try {
      const mapFd = bpf.mapCreate(bpf.BPF_MAP_TYPE_HASH, 6, 4, MAP_ENTRIES, "weft_pods");
      fds.push(mapFd);
      const progFd = bpf.progLoad({
        type: bpf.BPF_PROG_TYPE_SCHED_CLS,
        insns: fastPathProgram({ mapFd, ctLookup, ctRelease, optsSize }),
        license: FAST_PATH_LICENSE,
        name: FAST_PATH_PROGRAM,
        expectedAttachType: bpf.BPF_TCX_INGRESS,
      });
      fds.push(progFd);
      const id = bpf.progInfo(progFd).id;
      // What finding an earlier agent's programs takes (CAP_SYS_ADMIN), asked now, not per pod later.
      closeFile(bpf.progFdById(id));
      return new SameNodeFastPath(mapFd, progFd, id);
    } catch (e) {
      for (const fd of fds) closeFile(fd);
      return `${messageOf(e)}${isErrno(e, "EPERM") ? " (it needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)" : ""}`;
    }
  }

  /**
   * Puts the program on each pod's host veth (in place of an earlier agent's, at once, so
   * no packet misses it) and its MAC in the map, and takes gone pods out. Pods an earlier
   * agent's program is on are in the map before ours replaces it: no flow it carried falls
   * back to the bridge midway (conntrack would take it up there).
   */
  converge(conf: WeftConf): FastPathRun {
    const run: FastPathRun = { changes: [], problems: [], waiting: false };
    const ports = this.podPorts(conf, run);
    const problem = (what: string, e: unknown) => run.problems.push(`fast path: ${what}: ${messageOf(e)}`);
    // MACs whose veth could not be asked: left as they are in the map, until a run can.
    const unknown = new Set<string>();
    const found: Array<[Port, Programs]> = [];
    for (const p of ports) {
      try {
        const on = programsOn(p.hostIndex, this.progId);
        found.push([p, on]);
        if (!on.ours && on.earlier.length) this.put(p, problem);
      } catch (e) {
        problem(`pod ${p.mac}`, e);
        unknown.add(p.mac);
      }
    }
    const on = new Set(unknown);
    for (const [p, was] of found) {
      try {
        const change = this.takeOver(p.hostIndex, was);
        if (change) run.changes.push(`fast path: ${change} the veth of pod ${p.mac} (ifindex ${p.hostIndex})`);
        if (this.put(p, problem)) on.add(p.mac);
      } catch (e) {
        problem(`pod ${p.mac}`, e);
        if (stillOurs(p.hostIndex, this.progId)) on.add(p.mac);
      }
    }
    this.forgetAllBut(on, run, problem);
    // A veth no pod of ours is on any more (one taken off the bridge) loses the program.
    const current = new Set(ports.map((p) => p.hostIndex));
    for (const index of this.attached) {
      if (current.has(index)) continue;
      try {
        bpf.tcxDetach(this.progFd, index, bpf.BPF_TCX_INGRESS);
        run.changes.push(`fast path: off ifindex ${index}, no pod's veth now`);
      } catch (e) {
        if (!isErrno(e, "ENODEV") && !isErrno(e, "ENOENT")) {
          problem(`ifindex ${index}`, e);
          continue;
        }
      }
      this.attached.delete(index);
    }
    return run;
  }

  /** The pod's MAC into the map, for its host veth; false when the map refused it. */
  private put(p: Port, problem: (what: string, e: unknown) => void): boolean {
    const value = new Uint8Array(4);
    new DataView(value.buffer).setUint32(0, p.hostIndex, true);
    try {
      bpf.mapUpdate(this.mapFd, parseMac(p.mac), value);
      return true;
    } catch (e) {
      problem(`pod ${p.mac}`, e);
      return false;
    }
  }

  /** Takes every MAC but `keep` out of the map. */
  private forgetAllBut(keep: Set<string>, run: FastPathRun, problem: (what: string, e: unknown) => void): void {
    for (const key of bpf.mapKeys(this.mapFd, 6)) {
      const mac = formatMac(key);
      if (keep.has(mac)) continue;
      try {
        bpf.mapDelete(this.mapFd, key);
        run.changes.push(`fast path: forgot pod ${mac}`);
      } catch (e) {
        problem(`pod ${mac}`, e);
      }
    }
  }

  /**
   * Ours on a veth's ingress, in place of an earlier agent's, and no other of weft's:
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
    for (const id of rest) withProgram(id, (fd) => bpf.tcxDetach(fd, ifindex, bpf.BPF_TCX_INGRESS));
    if (!was.ours) return "on";
    return rest.length ? "a stray program off" : undefined;
  }

  /**
   * This node's weft pods, each found through its saved netns: the MAC of its interface and
   * that veth's peer here, when the peer is a port of the pods' bridge. A pod whose netns
   * is there but not yet its interface (its ADD is under way: the attachment is saved
   * first) makes the run `waiting`.
   */
  private podPorts(conf: WeftConf, run: FastPathRun): Port[] {
    const ports: Port[] = [];
    const { bridge, links } = bridgeLinks(conf);
    const hostLinks = new Map(links.map((l) => [l.index, l]));
    const seen = new Set<string>();
    for (const a of savedAttachments(conf)) {
      const netns = a.saved?.netns;
      if (!netns) continue;
      let pod: Link | null;
      try {
        pod = withSocket(netns, (nl) => getLinkByName(nl, a.ifname));
      } catch (e) {
        if (!isNetnsGone(e)) run.problems.push(`fast path: ${netns}: ${messageOf(e)}`);
        continue; // a netns gone is the agent's GC's to collect
      }
      const key = `${a.containerID}/${a.ifname}`;
      seen.add(key);
      const host = pod?.peerIndex === undefined ? undefined : hostLinks.get(pod.peerIndex);
      if (pod && bridge && host?.kind === "veth" && host.master === bridge.index) {
        ports.push({ mac: pod.mac, hostIndex: host.index });
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

/** The node's links, and among them the pods' bridge (undefined before the first pod's ADD makes it). */
function bridgeLinks(conf: WeftConf): { bridge: Link | undefined; links: Link[] } {
  const links = withSocket(undefined, listLinks);
  return { bridge: links.find((l) => l.name === conf.bridge), links };
}

/** The fast path programs on a veth's ingress: whether ours (`ours`, an ID) is, and earlier agents'. */
interface Programs {
  ours: boolean;
  earlier: number[];
}

function programsOn(ifindex: number, ours: number): Programs {
  const ids = bpf.tcxQuery(ifindex, bpf.BPF_TCX_INGRESS);
  const earlier = ids.filter((id) => id !== ours && withProgram(id, (fd) => bpf.progInfo(fd).name === FAST_PATH_PROGRAM) === true);
  return { ours: ids.includes(ours), earlier };
}

/** Whether ours is on a veth after a failure there; false if that cannot be told. */
function stillOurs(ifindex: number, ours: number): boolean {
  try {
    return bpf.tcxQuery(ifindex, bpf.BPF_TCX_INGRESS).includes(ours);
  } catch {
    return false;
  }
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
 * Takes the programs an earlier agent put on the bridge's ports off them: with
 * `--fast-path never`, or where this agent cannot load its own (they would go on with a
 * map nobody keeps).
 */
export function removeFastPath(conf: WeftConf): string[] {
  const changes: string[] = [];
  const { bridge, links } = bridgeLinks(conf);
  for (const port of links.filter((l) => bridge && l.master === bridge.index && l.kind === "veth")) {
    try {
      for (const id of programsOn(port.index, 0).earlier) {
        if (withProgram(id, (fd) => bpf.tcxDetach(fd, port.index, bpf.BPF_TCX_INGRESS)) !== false) changes.push(`fast path: off the veth ${port.name}`);
      }
    } catch (e) {
      // No tcx (before Linux 6.6) or no bpf(2) here, or not allowed it: nothing to take off,
      // or nothing this agent can do (its start-up line said why). ENODEV: a DEL took the veth.
      if (isErrno(e, "EINVAL") || isErrno(e, "ENOSYS") || isErrno(e, "EPERM")) return changes;
      if (!isErrno(e, "ENODEV")) throw e;
    }
  }
  return changes;
}
