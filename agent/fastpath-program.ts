// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
// (the kernel lends conntrack's kfuncs to GPL-compatible programs only: this one is
// offered under the GPL too, and says "GPL" when loaded)
//
// The same-node fast path's program, run on the ingress of each pod's host-side veth: a
// frame one pod sends to another pod of this node goes straight into that pod's netns
// (bpf_redirect_peer), past the bridge, br_netfilter and conntrack, as a bare veth pair
// would carry it. Everything else takes the bridge as before ("next"), and so does every
// packet conntrack already knows: a Service's reply from a pod on this node must be
// un-DNATed there. In BPF assembly because the node needs no compiler; the C it stands for:
//
//   if (frame is IPv4, 20-byte header, not a fragment) {
//     if (TCP or UDP) tuple = its addresses and ports;
//     // An ICMP error about a TCP or UDP packet goes the way of the flow that packet was
//     // of: conntrack makes it RELATED to a flow it knows, and INVALID (which kube-proxy's
//     // rules drop) to one it never saw.
//     else if (ICMP unreachable, time exceeded or parameter problem, about TCP or UDP,
//              quoting a packet's first fragment or a whole one)
//       tuple = the quoted packet's addresses and ports, swapped (the flow's reply);
//     else return TCX_NEXT;
//     port = pods[destination MAC];              // the host veth of the pod it is for
//     if (port) {
//       ct = bpf_skb_ct_lookup(skb, tuple, this netns, its protocol);
//       if (ct) bpf_ct_release(ct);              // known to conntrack: the bridge's path
//       else if (lookup said ENOENT) {
//         bpf_skb_change_type(skb, PACKET_HOST); // the host veth took it as another's
//         return bpf_redirect_peer(*port, 0);
//       }
//     }
//   }
//   return TCX_NEXT;
import { asm, assemble, type Insn } from "../shared/bpf/asm";

const { movImm, movReg, addImm, andImm, load, store, storeImm, loadMap, jeqImm, jneImm, jne32Imm, jgtReg, ja, call, callKfunc, exit } = asm;

export interface FastPathKernel {
  /** the `pods` map: destination MAC (6 bytes) -> host veth ifindex (u32) */
  mapFd: number;
  /** BTF IDs of the conntrack kfuncs */
  ctLookup: number;
  ctRelease: number;
  /** this kernel's sizeof(struct bpf_ct_opts) (12 before Linux 6.8, 16 after) */
  optsSize: number;
}

export const FAST_PATH_LICENSE = "GPL";

const FN_MAP_LOOKUP_ELEM = 1;
const FN_SKB_CHANGE_TYPE = 32;
const FN_REDIRECT_PEER = 155;
const PACKET_HOST = 0;
const TCX_NEXT = -1;
const ENOENT = 2;
// struct __sk_buff
const SKB_DATA = 76;
const SKB_DATA_END = 80;
// The frame: Ethernet (14), IPv4 without options (20), then the ports (4).
const ETH_PROTO = 12;
const IP = 14;
const HEADERS = IP + 20 + 4;
// Read little-endian: 0x0800 (IPv4), and MF plus the fragment offset.
const ETH_P_IP_LE = 0x0008;
const FRAGMENT_LE = 0xff3f;
const ICMP = 1;
const TCP = 6;
const UDP = 17;
// An ICMP error: its type at the ICMP header's start; the packet it quotes after 8 bytes.
const ICMP_HEADER = IP + 20;
const QUOTED = ICMP_HEADER + 8;
const ICMP_ERROR_HEADERS = QUOTED + 20 + 4;
const ICMP_UNREACHABLE = 3;
const ICMP_TIME_EXCEEDED = 11;
const ICMP_PARAMETER_PROBLEM = 12;
// The stack: the map key, the conntrack tuple (struct bpf_sock_tuple's ipv4), the options.
const KEY = -8;
const TUPLE = -24;
const OPTS = -40;

/** `size` bytes of the frame (r2) at `from`, through r5, onto the stack (r10) at `to`. */
const copy = (size: 1 | 2 | 4, from: number, to: number): Insn[] => [load(size, 5, 2, from), store(size, 10, to, 5)];

export function fastPathProgram(k: FastPathKernel): Uint8Array {
  // r6 the context, r7 the tuple's protocol, r8 the target ifindex: kept across calls.
  return assemble([
    movReg(6, 1),
    load(4, 2, 6, SKB_DATA),
    load(4, 3, 6, SKB_DATA_END),
    movReg(4, 2),
    addImm(4, HEADERS),
    jgtReg(4, 3, "next"),
    load(2, 5, 2, ETH_PROTO),
    jneImm(5, ETH_P_IP_LE, "next"),
    load(1, 5, 2, IP),
    jneImm(5, 0x45, "next"), // version 4, 20-byte header
    load(2, 5, 2, IP + 6),
    andImm(5, FRAGMENT_LE),
    jneImm(5, 0, "next"),
    // The key (destination MAC), onto the stack.
    copy(4, 0, KEY),
    copy(2, 4, KEY + 4),
    // The tuple (addresses, then ports) onto the stack, and r7 its protocol.
    load(1, 7, 2, IP + 9),
    jeqImm(7, TCP, "transport"),
    jeqImm(7, UDP, "transport"),
    jneImm(7, ICMP, "next"),
    movReg(4, 2),
    addImm(4, ICMP_ERROR_HEADERS),
    jgtReg(4, 3, "next"),
    load(1, 5, 2, ICMP_HEADER),
    jeqImm(5, ICMP_UNREACHABLE, "icmp error"),
    jeqImm(5, ICMP_TIME_EXCEEDED, "icmp error"),
    jneImm(5, ICMP_PARAMETER_PROBLEM, "next"),
    "icmp error",
    load(1, 5, 2, QUOTED),
    jneImm(5, 0x45, "next"),
    load(2, 5, 2, QUOTED + 6),
    andImm(5, FRAGMENT_LE),
    jneImm(5, 0, "next"), // a later fragment quotes no ports
    load(1, 7, 2, QUOTED + 9),
    jeqImm(7, TCP, "quoted transport"),
    jneImm(7, UDP, "next"),
    "quoted transport",
    copy(4, QUOTED + 16, TUPLE),
    copy(4, QUOTED + 12, TUPLE + 4),
    copy(2, QUOTED + 22, TUPLE + 8),
    copy(2, QUOTED + 20, TUPLE + 10),
    ja("lookup"),
    "transport",
    copy(4, IP + 12, TUPLE),
    copy(4, IP + 16, TUPLE + 4),
    copy(4, IP + 20, TUPLE + 8),
    "lookup",
    loadMap(1, k.mapFd),
    movReg(2, 10),
    addImm(2, KEY),
    call(FN_MAP_LOOKUP_ELEM),
    jeqImm(0, 0, "next"),
    load(4, 8, 0, 0),
    // struct bpf_ct_opts: netns_id -1 (this netns), error 0, l4proto, the rest 0.
    storeImm(4, 10, OPTS, -1),
    storeImm(4, 10, OPTS + 4, 0),
    storeImm(8, 10, OPTS + 8, 0),
    store(1, 10, OPTS + 8, 7),
    movReg(1, 6),
    movReg(2, 10),
    addImm(2, TUPLE),
    movImm(3, 12),
    movReg(4, 10),
    addImm(4, OPTS),
    movImm(5, k.optsSize),
    callKfunc(k.ctLookup),
    jeqImm(0, 0, "untracked"),
    movReg(1, 0),
    callKfunc(k.ctRelease),
    ja("next"),
    "untracked",
    // No entry, and not for a failed lookup (which takes the bridge, to be safe).
    load(4, 5, 10, OPTS + 4),
    jne32Imm(5, -ENOENT, "next"),
    // The frame was for another MAC than the host veth's (PACKET_OTHERHOST), which the pod's
    // IP stack would drop: kernels before 6.15 do not reset that on bpf_redirect_peer.
    movReg(1, 6),
    movImm(2, PACKET_HOST),
    call(FN_SKB_CHANGE_TYPE),
    movReg(1, 8),
    movImm(2, 0),
    call(FN_REDIRECT_PEER),
    exit(),
    "next",
    movImm(0, TCX_NEXT),
    exit(),
  ]);
}
