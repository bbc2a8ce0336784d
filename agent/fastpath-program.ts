// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
// (the kernel lends conntrack's kfuncs to GPL-compatible programs only: this one is
// offered under the GPL too, and says "GPL" when loaded)
//
// The fast path's program, run on the ingress of each pod's host-side veth, of the
// underlay interface and of the VXLAN device. Three ways past the kernel's forwarding:
//   - a frame one pod sends to another pod of this node goes straight into that pod's netns
//     (bpf_redirect_peer), past the bridge, br_netfilter and conntrack, as a bare veth pair
//     would carry it;
//   - a packet a pod sends to a pod of another node leaves by the route the kernel would
//     pick (bpf_fib_lookup, then bpf_redirect_neigh: the neighbor code fills in the MACs),
//     past the bridge, the node's netfilter hooks and conntrack;
//   - a packet from a pod of another node to a pod of this one, arriving on the underlay or
//     out of the tunnel, goes into that pod's netns at once, MACs and TTL as routing sets them.
// Each way takes packets only from where they can come: a pod's own veth (same node, and
// out), the device its node's traffic comes by (in: the VXLAN device, or the underlay for
// a peer routed directly); nothing else reaches a pod past the kernel's checks.
// Everything else goes on as before ("next"), and so does every packet conntrack already
// knows: a Service's reply must be un-DNATed where the Service was. Cross-node the rule is
// symmetric (a pod here to a pod there, or back), so a flow skips conntrack in both
// directions or in neither. In BPF assembly because the node needs no compiler; the C it
// stands for:
//
//   if (frame is IPv4, 20-byte header, not a fragment) {
//     if (TCP or UDP) tuple = its addresses and ports;
//     // An ICMP error about a TCP or UDP packet goes the way of the flow that packet was
//     // of: conntrack makes it RELATED to a flow it knows, and INVALID (which kube-proxy's
//     // rules drop) to one it never saw.
//     else if (ICMP unreachable, time exceeded or parameter problem, quoting a whole
//              (unfragmented) TCP or UDP packet with a 20-byte header)
//       tuple = the quoted packet's addresses and ports, swapped (the flow's reply);
//     else return TCX_NEXT;
//     if (ip.dst != tuple.dst) return TCX_NEXT;
//     if ((pod = pods[tuple.dst])) {             // for a pod of this node
//       if (eth.dst == pod->mac) way = SAME;     // bridged to it
//       else if (skb->pkt_type == PACKET_HOST && ip.ttl > 1 && (via = peers[tuple.src])
//                && *via == skb->ingress_ifindex) way = IN;  // routed to it, from a pod there
//       else return TCX_NEXT;
//     } else if (peers[tuple.dst] && ip.ttl > 1) way = OUT;  // to a pod of another node
//     else return TCX_NEXT;
//     if (way != IN) {                           // from a pod here, on its own veth
//       from = pods[tuple.src];
//       if (!from || from->ifindex != skb->ingress_ifindex) return TCX_NEXT;
//     }
//     ct = bpf_skb_ct_lookup(skb, tuple, this netns, its protocol);
//     if (ct) { bpf_ct_release(ct); return TCX_NEXT; }  // known to conntrack
//     if (lookup said other than ENOENT) return TCX_NEXT;  // to be safe
//     if (way == SAME) {
//       bpf_skb_change_type(skb, PACKET_HOST);   // the host veth took it as another's
//       return bpf_redirect_peer(pod->ifindex, 0);
//     }
//     if (way == IN) {
//       eth.dst = pod->mac; eth.src = pod->gateway_mac; ip.ttl--;
//       return bpf_redirect_peer(pod->ifindex, 0);
//     }
//     fib = { AF_INET, .ifindex = skb->ingress_ifindex, ip.tos, ip.src, ip.dst };
//     rc = bpf_fib_lookup(skb, &fib, sizeof fib, 0);
//     if (rc != SUCCESS && rc != NO_NEIGH) return TCX_NEXT;
//     ip.ttl--;
//     return bpf_redirect_neigh(fib.ifindex, &(struct bpf_redir_neigh){ AF_INET, fib.ipv4_dst }, 20, 0);
//   }
//   return TCX_NEXT;
import { asm, assemble, type Insn, type Item } from "../shared/bpf/asm";

const { movImm, movReg, addImm, andImm, load, store, storeImm, loadMap, jeqImm, jneImm, jne32Imm, jltImm, jneReg, jgtReg, ja, call, callKfunc, exit } = asm;

export interface FastPathKernel {
  /** the `pods` map: a pod's IPv4 address (4 bytes) -> POD_VALUE */
  podsFd: number;
  /** the `peers` LPM trie: other nodes' pod CIDRs ({ u32 prefix length, 4 address bytes }) -> the ifindex their traffic comes in by (u32) */
  peersFd: number;
  /** BTF IDs of the conntrack kfuncs */
  ctLookup: number;
  ctRelease: number;
  /** this kernel's sizeof(struct bpf_ct_opts) (12 before Linux 6.8, 16 after) */
  optsSize: number;
}

/** A `pods` entry: the key a pod's IPv4 address; the value the ifindex of its host veth (u32), its MAC, its gateway's MAC (the bridge's). */
export const POD_VALUE = { keySize: 4, size: 16, hostIndex: 0, mac: 4, gatewayMac: 10 } as const;

/** A `peers` entry: the key { u32 prefix length, 4 address bytes }; the value the ifindex its traffic comes in by (u32). */
export const PEER_ENTRY = { keySize: 8, valueSize: 4 } as const;

export const FAST_PATH_LICENSE = "GPL";

const FN_MAP_LOOKUP_ELEM = 1;
const FN_SKB_CHANGE_TYPE = 32;
const FN_FIB_LOOKUP = 69;
const FN_REDIRECT_NEIGH = 152;
const FN_REDIRECT_PEER = 155;
const AF_INET = 2;
const PACKET_HOST = 0;
const TCX_NEXT = -1;
const ENOENT = 2;
const FIB_SUCCESS = 0;
const FIB_NO_NEIGH = 7;
// struct __sk_buff
const SKB_PKT_TYPE = 4;
const SKB_INGRESS_IFINDEX = 36;
const SKB_DATA = 76;
const SKB_DATA_END = 80;
// The frame: Ethernet (14), IPv4 without options (20), then the ports (4).
const ETH_PROTO = 12;
const IP = 14;
const IP_TOS = IP + 1;
const IP_TTL = IP + 8;
const IP_CHECK = IP + 10;
const IP_SRC = IP + 12;
const IP_DST = IP + 16;
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
// The ways (r9).
const SAME = 0;
const IN = 1;
const OUT = 2;
// The stack: a `pods` key, a `peers` key, the conntrack tuple (struct bpf_sock_tuple's
// ipv4), the conntrack options, struct bpf_fib_lookup, struct bpf_redir_neigh.
const POD_KEY = -8;
const PEER_KEY = -16;
const TUPLE = -32;
const OPTS = -48;
const FIB = -112;
const FIB_IFINDEX = FIB + 8;
const FIB_TOS = FIB + 12;
const FIB_SRC = FIB + 16;
const FIB_DST = FIB + 32;
const NEIGH = -136;

/** `size` bytes of the frame (r2) at `from`, through r5, onto the stack (r10) at `to`. */
const copy = (size: 1 | 2 | 4, from: number, to: number): Insn[] => [load(size, 5, 2, from), store(size, 10, to, 5)];

/** r2 the frame's start, r3 its end, the headers checked to be there (again: a call forgets them). */
const frame = (): Insn[] => [load(4, 2, 6, SKB_DATA), load(4, 3, 6, SKB_DATA_END), movReg(4, 2), addImm(4, HEADERS), jgtReg(4, 3, "next")];

/** r0 = map[the key on the stack at `key`] (null when absent). */
const lookup = (fd: number, key: number): Item[] => [loadMap(1, fd), movReg(2, 10), addImm(2, key), call(FN_MAP_LOOKUP_ELEM)];

/** 4 bytes on the stack from `from` to `to`, through r1. */
const onStack = (from: number, to: number): Insn[] => [load(4, 1, 10, from), store(4, 10, to, 1)];

/** The `peers` key for the address on the stack at `from`, onto the stack: a host route's. */
const peerKeyOnStack = (from: number): Item[] => [storeImm(4, 10, PEER_KEY, 32), onStack(from, PEER_KEY + 4)];

/** "next" unless the packet (r2) may be forwarded once more. */
const ttlLeft = (): Insn[] => [load(1, 1, 2, IP_TTL), jltImm(1, 2, "next")];

/** The TTL one less and the header checksum updated to match (as the kernel's ip_decrease_ttl). */
const decreaseTtl = (label: string): Item[] => [
  load(1, 1, 2, IP_TTL),
  addImm(1, -1),
  store(1, 2, IP_TTL, 1),
  load(2, 1, 2, IP_CHECK),
  addImm(1, 1), // the checksum word as read little-endian, plus htons(0x0100)
  jltImm(1, 0xffff, label),
  addImm(1, 1),
  label,
  store(2, 2, IP_CHECK, 1),
];

export function fastPathProgram(k: FastPathKernel): Uint8Array {
  // r6 the context, r7 the tuple's protocol, r8 the pod a packet is for, r9 the way: kept across calls.
  return assemble([
    movReg(6, 1),
    frame(),
    load(2, 5, 2, ETH_PROTO),
    jneImm(5, ETH_P_IP_LE, "next"),
    load(1, 5, 2, IP),
    jneImm(5, 0x45, "next"), // version 4, 20-byte header
    load(2, 5, 2, IP + 6),
    andImm(5, FRAGMENT_LE),
    jneImm(5, 0, "next"),
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
    ja("which way"),
    "transport",
    copy(4, IP_SRC, TUPLE),
    copy(4, IP_DST, TUPLE + 4),
    copy(4, IP + 20, TUPLE + 8),
    "which way",
    // The flow's addresses (the tuple's: for an ICMP error, those of the flow it is about)
    // decide; the packet must be for the flow's destination.
    load(4, 1, 2, IP_DST),
    load(4, 3, 10, TUPLE + 4),
    jneReg(1, 3, "next"),
    onStack(TUPLE + 4, POD_KEY),
    lookup(k.podsFd, POD_KEY),
    jeqImm(0, 0, "to another node?"),
    movReg(8, 0),
    frame(),
    // Bridged to the pod's own MAC: from a pod of this node, if it came in by that pod's veth.
    load(4, 1, 2, 0),
    load(4, 3, 8, POD_VALUE.mac),
    jneReg(1, 3, "from another node?"),
    load(2, 1, 2, 4),
    load(2, 3, 8, POD_VALUE.mac + 4),
    jneReg(1, 3, "from another node?"),
    movImm(9, SAME),
    ja("from a pod here?"),
    "from another node?",
    // Addressed to this node (the underlay's MAC, the VXLAN device's), from a pod there,
    // and in by the device that node's traffic comes by.
    load(4, 1, 6, SKB_PKT_TYPE),
    jneImm(1, PACKET_HOST, "next"),
    ttlLeft(),
    peerKeyOnStack(TUPLE),
    lookup(k.peersFd, PEER_KEY),
    jeqImm(0, 0, "next"),
    load(4, 1, 0, 0),
    load(4, 3, 6, SKB_INGRESS_IFINDEX),
    jneReg(1, 3, "next"),
    movImm(9, IN),
    ja("conntrack"),
    "to another node?",
    peerKeyOnStack(TUPLE + 4),
    lookup(k.peersFd, PEER_KEY),
    jeqImm(0, 0, "next"),
    frame(),
    ttlLeft(),
    movImm(9, OUT),
    "from a pod here?",
    // Sent by a pod of this node, on its own veth (not one claiming its address).
    onStack(TUPLE, POD_KEY),
    lookup(k.podsFd, POD_KEY),
    jeqImm(0, 0, "next"),
    load(4, 1, 0, POD_VALUE.hostIndex),
    load(4, 3, 6, SKB_INGRESS_IFINDEX),
    jneReg(1, 3, "next"),
    "conntrack",
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
    // No entry, and not for a failed lookup (which takes the kernel's path, to be safe).
    load(4, 5, 10, OPTS + 4),
    jne32Imm(5, -ENOENT, "next"),
    jeqImm(9, SAME, "same node"),
    jeqImm(9, IN, "in"),
    // Out to another node: the kernel's route and neighbor.
    [0, 8, 16, 24, 32, 40, 48, 56].map((o) => storeImm(8, 10, FIB + o, 0)),
    storeImm(1, 10, FIB, AF_INET),
    load(4, 1, 6, SKB_INGRESS_IFINDEX),
    store(4, 10, FIB_IFINDEX, 1),
    frame(),
    copy(1, IP_TOS, FIB_TOS),
    copy(4, IP_SRC, FIB_SRC),
    copy(4, IP_DST, FIB_DST),
    movReg(1, 6),
    movReg(2, 10),
    addImm(2, FIB),
    movImm(3, 64),
    movImm(4, 0),
    call(FN_FIB_LOOKUP),
    jeqImm(0, FIB_SUCCESS, "routed"),
    jneImm(0, FIB_NO_NEIGH, "next"), // blackholed, unreachable, not forwarded: the kernel says so
    "routed",
    frame(),
    decreaseTtl("out ttl"),
    // struct bpf_redir_neigh: AF_INET and the next hop (the lookup left it in ipv4_dst).
    storeImm(4, 10, NEIGH, AF_INET),
    load(4, 1, 10, FIB_DST),
    store(4, 10, NEIGH + 4, 1),
    [8, 12, 16].map((o) => storeImm(4, 10, NEIGH + o, 0)),
    load(4, 1, 10, FIB_IFINDEX),
    movReg(2, 10),
    addImm(2, NEIGH),
    movImm(3, 20),
    movImm(4, 0),
    call(FN_REDIRECT_NEIGH),
    exit(),
    "in",
    // In from another node: as routing would hand it to the pod over the bridge.
    frame(),
    load(4, 1, 8, POD_VALUE.mac),
    store(4, 2, 0, 1),
    load(2, 1, 8, POD_VALUE.mac + 4),
    store(2, 2, 4, 1),
    load(2, 1, 8, POD_VALUE.gatewayMac),
    store(2, 2, 6, 1),
    load(4, 1, 8, POD_VALUE.gatewayMac + 2),
    store(4, 2, 8, 1),
    decreaseTtl("in ttl"),
    ja("into the pod"),
    "same node",
    // The frame was for another MAC than the host veth's (PACKET_OTHERHOST), which the pod's
    // IP stack would drop: kernels before 6.15 do not reset that on bpf_redirect_peer.
    movReg(1, 6),
    movImm(2, PACKET_HOST),
    call(FN_SKB_CHANGE_TYPE),
    "into the pod",
    load(4, 1, 8, POD_VALUE.hostIndex),
    movImm(2, 0),
    call(FN_REDIRECT_PEER),
    exit(),
    "next",
    movImm(0, TCX_NEXT),
    exit(),
  ]);
}
