// nftables backend: all of weft's host rules live in one table, `inet weft`, and per-pod
// state is only set/map elements and one small chain per masqueraded address, so that
// every change is a single atomic `nft -f -` batch.
//
//   table inet weft {
//     set pods4 { type ipv4_addr; elements = { 10.1.0.2 comment "net/ctr/eth0" } }
//     map masq4 { type ipv4_addr : verdict; elements = { 10.1.0.2 comment "…" : jump masq-10.1.0.2 } }
//     chain forward {            # just before iptables' filter FORWARD (priority 0)
//       ip saddr @pods4 meta mark set meta mark | 0x1000
//       ip daddr @pods4 meta mark set meta mark | 0x1000
//     }
//     chain postrouting {        # source NAT, dispatched on the pod address
//       ip saddr vmap @masq4
//     }
//     chain masq-10.1.0.2 {      # one per masqueraded pod address
//       ip daddr != { 10.1.0.0/24, 224.0.0.0/4 } masquerade comment "net/ctr/eth0"
//     }
//   }                           (and pods6, masq6, "ip6 …" rules for IPv6)
//
// A chain per address rather than per pod: its name derives from the address alone, so DEL
// can name the exact map element (`IP : jump masq-IP`) without knowing the subnet, and an
// address's element can never clash with a different value.
//
// Idempotence without `destroy` (nft 1.0.6 lacks it): `add` of an existing element or chain
// is a no-op, so "add X; delete X" deletes X whether or not it existed, and
// "add X; delete X; add X comment …" replaces X and its comment.
//
// Per address, pods4/pods6 hold it only where iptables' FORWARD policy drops (see
// iptables.ts), and masq4/masq6 only with ipMasq; so with neither, weft makes no table at all.
//
// Speed: a batch that deletes anything (an element, a rule by flushing, even an `add` of an
// existing chain) costs an RCU grace period before nft exits: ~20 ms here, against ~4 ms for
// a batch that only creates. (The commit itself is quick; the kernel frees what it deleted
// in a work item after synchronize_rcu(), and releasing a netfilter netlink socket, as nft
// does on exit, waits for that work: nft_rcv_nl_event on NETLINK_URELEASE.)
// So, before spawning anything, ADD and DEL ask the kernel over netlink (microseconds, see
// shared/netlink/nftables.ts) what exists: the table, and the addresses' elements. ADD sends
// a batch of pure creations in the common case (a new pod on a host where the table exists),
// the full idempotent batch when the table is missing or something of these addresses exists
// (first ADD on the host, an ADD retried, a DEL that never came) or the creations fail, and
// nothing when nothing is wanted or stale. DEL sends its deleting batch only for elements
// that exist and carry the pod's comment.
import { NFPROTO, getElement, listElements, type SetElement, tableExists } from "../netlink/nftables";
import type { NetlinkSocket } from "../netlink/socket";
import { addressBytes, formatIP, ipFromBytes } from "../ip";
import { okOrThrow, start, which, type Running } from "../process";
import { type Family, type Pod, type PodAddr, MULTICAST } from "./common";

/** The skb mark bit set on forwarded pod traffic; iptables' FORWARD chain accepts it (see iptables.ts). */
export const POD_MARK = 0x1000;
/** The statement that marks a packet for iptables' FORWARD accept rule. */
export const MARK_POD = `meta mark set meta mark | 0x${POD_MARK.toString(16)}`;
/** Base-chain declarations: forward just before iptables' filter table, which reads the mark. */
export const FORWARD_HOOK = "type filter hook forward priority filter - 1; policy accept;";
export const POSTROUTING_HOOK = "type nat hook postrouting priority srcnat; policy accept;";

const T = "inet weft";
const ipv = (f: Family): string => (f === 4 ? "ip" : "ip6");
const masqChain = (a: PodAddr): string => `masq-${a.ip.replaceAll(":", "-")}`;

// Declared in every full batch, so that the element commands always have something to
// refer to, even on a host where weft never ran.
const DECLARE = [
  `add table ${T}`,
  `add set ${T} pods4 { type ipv4_addr; }`,
  `add set ${T} pods6 { type ipv6_addr; }`,
  `add map ${T} masq4 { type ipv4_addr : verdict; }`,
  `add map ${T} masq6 { type ipv6_addr : verdict; }`,
];

// Flushed and refilled by every full ADD batch (atomically: no packet sees them empty).
// Spelled out: every bridge and weft call loads this module, and flatMap here would cost
// each ~0.1 ms of cold JSC built-in.
const BASE_CHAINS = [
  `add chain ${T} forward { ${FORWARD_HOOK} }`,
  `flush chain ${T} forward`,
  `add rule ${T} forward ip saddr @pods4 ${MARK_POD}`,
  `add rule ${T} forward ip daddr @pods4 ${MARK_POD}`,
  `add rule ${T} forward ip6 saddr @pods6 ${MARK_POD}`,
  `add rule ${T} forward ip6 daddr @pods6 ${MARK_POD}`,
  `add chain ${T} postrouting { ${POSTROUTING_HOOK} }`,
  `flush chain ${T} postrouting`,
  `add rule ${T} postrouting ip saddr vmap @masq4`,
  `add rule ${T} postrouting ip6 saddr vmap @masq6`,
];

const comment = (pod: Pod): string => `comment "${pod.key}"`;

const masqRule = (pod: Pod, a: PodAddr): string => {
  const exempt = `{ ${a.subnet}, ${MULTICAST[a.family]} }`; // own subnet and multicast
  return `add rule ${T} ${masqChain(a)} ${ipv(a.family)} daddr != ${exempt} masquerade ${comment(pod)}`;
};

/** "add; delete": removes an element whether or not it exists. */
export function dropElement(set: string, elem: string, key: string, table = T): string[] {
  return [`add element ${table} ${set} { ${elem} }`, `delete element ${table} ${set} { ${key} }`];
}

/** Removes the address's NAT: its `masq` map element, then its chain. */
function dropMasq(a: PodAddr): string[] {
  const chain = masqChain(a);
  return [
    `add chain ${T} ${chain}`,
    ...dropElement(`masq${a.family}`, `${a.ip} : jump ${chain}`, a.ip),
    `delete chain ${T} ${chain}`,
  ];
}

/** Creations only: fails if the table is missing or anything of these addresses exists. */
function createPod(pod: Pod, masquerade: boolean, marked: Set<Family>): string[] {
  const cmds: string[] = [];
  for (const a of pod.addrs) {
    if (marked.has(a.family)) cmds.push(`create element ${T} pods${a.family} { ${a.ip} ${comment(pod)} }`);
    if (!masquerade) continue;
    const chain = masqChain(a);
    cmds.push(`create chain ${T} ${chain}`, masqRule(pod, a), `create element ${T} masq${a.family} { ${a.ip} ${comment(pod)} : jump ${chain} }`);
  }
  return cmds;
}

/** Idempotent: sets up the table and replaces whatever exists for these addresses. */
function replacePod(pod: Pod, masquerade: boolean, marked: Set<Family>): string[] {
  const cmds = [...DECLARE, ...BASE_CHAINS];
  for (const a of pod.addrs) {
    const pods = `pods${a.family}`;
    cmds.push(...dropElement(pods, a.ip, a.ip));
    // Not marked: iptables' FORWARD accepts anyway, whatever an earlier ADD found.
    if (marked.has(a.family)) cmds.push(`add element ${T} ${pods} { ${a.ip} ${comment(pod)} }`);
    if (!masquerade) {
      cmds.push(...dropMasq(a)); // no NAT for this address, whatever an earlier ADD said
      continue;
    }
    const chain = masqChain(a);
    cmds.push(
      `add chain ${T} ${chain}`,
      `flush chain ${T} ${chain}`,
      masqRule(pod, a),
      ...dropElement(`masq${a.family}`, `${a.ip} : jump ${chain}`, a.ip),
      `add element ${T} masq${a.family} { ${a.ip} ${comment(pod)} : jump ${chain} }`,
    );
  }
  return cmds;
}

/** What of an address exists in `inet weft`. */
interface Found {
  addr: PodAddr;
  marked: boolean; // its pods4/pods6 element
  masq: boolean; // its masq4/masq6 element (and so its chain)
}

/**
 * What exists of these addresses; with `owner`, only elements that carry its comment (a DEL's
 * addresses may be another pod's by now). Null when the kernel cannot GET single elements.
 */
function lookUp(nl: NetlinkSocket, addrs: PodAddr[], owner?: string): Found[] | null {
  const ours = (e: SetElement | null): boolean => e !== null && (owner === undefined || e.comment === owner);
  const found: Found[] = [];
  for (const addr of addrs) {
    const key = addressBytes(addr.ip);
    let pods: SetElement | null;
    let masq: SetElement | null;
    try {
      pods = getElement(nl, NFPROTO.INET, "weft", `pods${addr.family}`, key);
      masq = getElement(nl, NFPROTO.INET, "weft", `masq${addr.family}`, key);
    } catch {
      return null;
    }
    found.push({ addr, marked: ours(pods), masq: ours(masq) });
  }
  return found;
}

/**
 * Installs the pod's elements: marks for the families in `marked` (their FORWARD drops),
 * masquerade when asked. No process when there is nothing to add and nothing stale to remove;
 * otherwise one `nft` in the common case (the table exists, nothing of these addresses does).
 */
export function addPod(nl: NetlinkSocket, pod: Pod, masquerade: boolean, marked: Set<Family>): void {
  const wanted = masquerade || pod.addrs.some((a) => marked.has(a.family));
  const table = tableExists(nl, NFPROTO.INET, "weft");
  // Without single-element GET, everything is assumed there: the replacing batch is idempotent.
  const found = table ? (lookUp(nl, pod.addrs) ?? pod.addrs.map((addr) => ({ addr, marked: true, masq: true }))) : [];
  const stale = found.some((x) => x.marked || x.masq);
  if (!wanted) {
    // Nothing to add; only leftovers of these addresses (an earlier ADD under a DROP policy
    // or with ipMasq, whose DEL never came) to remove.
    const batch = removalOf(found);
    if (batch) mustRunBatch(`removing stale nftables rules for pod ${pod.key}`, batch);
    return;
  }
  if (table && !stale && tryBatch(createPod(pod, masquerade, marked))) return;
  mustRunBatch(`adding nftables rules for pod ${pod.key}`, script(replacePod(pod, masquerade, marked)));
}

/**
 * The `nft -f -` batch removing the pod's elements and chains, or null when nothing of the
 * pod exists: those of its addresses that still carry its comment, or, with the addresses
 * unknown, every element that does.
 */
export function removalBatch(nl: NetlinkSocket, pod: Pod, addrsKnown: boolean): string | null {
  if (!tableExists(nl, NFPROTO.INET, "weft")) return null;
  return removalOf((addrsKnown ? lookUp(nl, pod.addrs, pod.key) : null) ?? findByComment(nl, (c) => c === pod.key));
}

/** GC's batch: every element (and chain) whose comment names a pod `isStale` picks; null if none. */
export function staleRemovalBatch(nl: NetlinkSocket, isStale: (key: string) => boolean): string | null {
  if (!tableExists(nl, NFPROTO.INET, "weft")) return null;
  return removalOf(findByComment(nl, isStale));
}

function removalOf(found: Found[]): string | null {
  const cmds: string[] = [];
  for (const { addr, marked, masq } of found) {
    if (marked) cmds.push(...dropElement(`pods${addr.family}`, addr.ip, addr.ip));
    if (masq) cmds.push(...dropMasq(addr));
  }
  return cmds.length ? script([...DECLARE, ...cmds]) : null;
}

/** Runs `nft -f -` on `batch`, throwing `what: nft -f - failed: <nft's stderr>` when nft fails. */
export function mustRunBatch(what: string, batch: string): void {
  mustFinish(what, startBatch(batch));
}

/** Runs `nft -f -` on `cmds`; whether it succeeded (the caller then takes a longer way). */
export function tryBatch(cmds: string[]): boolean {
  return startBatch(script(cmds)).wait().ok;
}

/** Waits for a startBatch(); throws as mustRunBatch does. */
export function mustFinish(what: string, running: Running): void {
  okOrThrow(`${what}: nft -f - failed`, running.wait());
}

/** Starts `nft -f -` on `batch`, for the caller to wait on; see removalBatch(). */
export function startBatch(batch: string): Running {
  return start(nftPath(), ["-f", "-"], batch);
}

/** Commands as one `nft -f -` script. */
export const script = (cmds: string[]): string => cmds.join("\n") + "\n";

/** Addresses having a pods or masq element whose comment `wanted` picks. */
function findByComment(nl: NetlinkSocket, wanted: (comment: string) => boolean): Found[] {
  const found = new Map<string, Found>();
  for (const f of [4, 6] as const) {
    for (const kind of ["marked", "masq"] as const) {
      for (const e of listElements(nl, NFPROTO.INET, "weft", `${kind === "marked" ? "pods" : "masq"}${f}`)) {
        if (e.comment === undefined || !wanted(e.comment)) continue;
        const ip = formatIP(ipFromBytes(e.key));
        const x = found.get(ip) ?? { addr: { ip, family: f }, marked: false, masq: false };
        x[kind] = true;
        found.set(ip, x);
      }
    }
  }
  return [...found.values()];
}

function nftPath(): string {
  const path = which("nft");
  if (!path) throw new Error("nft not found on PATH or in the system directories");
  return path;
}
