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
//   if (frame is IPv4 TCP or UDP, 20-byte header, not a fragment) {
//     port = pods[destination MAC];              // the host veth of the pod it is for
//     if (port) {
//       ct = bpf_skb_ct_lookup(skb, ip and ports, this netns, protocol);
//       if (ct) bpf_ct_release(ct);              // known to conntrack: the bridge's path
//       else if (lookup said ENOENT) {
//         bpf_skb_change_type(skb, PACKET_HOST); // the host veth took it as another's
//         return bpf_redirect_peer(*port, 0);
//       }
//     }
//   }
//   return TCX_NEXT;
import { asm, assemble } from "../shared/bpf/asm";

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
const TCP = 6;
const UDP = 17;
// The stack: the map key, the conntrack tuple (struct bpf_sock_tuple's ipv4), the options.
const KEY = -8;
const TUPLE = -24;
const OPTS = -40;

export function fastPathProgram(k: FastPathKernel): Uint8Array {
  // r6 the context, r7 the IP protocol, r8 the target ifindex: kept across calls.
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
    load(1, 7, 2, IP + 9),
    jeqImm(7, TCP, "transport"),
    jneImm(7, UDP, "next"),
    "transport",
    // The key (destination MAC) and the tuple (addresses, then ports), onto the stack.
    load(4, 5, 2, 0),
    store(4, 10, KEY, 5),
    load(2, 5, 2, 4),
    store(2, 10, KEY + 4, 5),
    load(4, 5, 2, IP + 12),
    store(4, 10, TUPLE, 5),
    load(4, 5, 2, IP + 16),
    store(4, 10, TUPLE + 4, 5),
    load(4, 5, 2, IP + 20),
    store(4, 10, TUPLE + 8, 5),
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
