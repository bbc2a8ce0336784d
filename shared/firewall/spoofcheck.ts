// The bridge's `macspoofchk`: a pod may put frames on the bridge only from the MAC its
// interface was given. As in the reference (pkg/link/spoofcheck.go), an nftables filter on
// the bridge family's prerouting hook drops frames entering through the pod's host veth
// with any other source MAC. Here every pod shares one rule and is two set elements, named
// by its comment, so a pod's change is one small batch:
//
//   table bridge weft {
//     set guarded { type ifname; }               # "veth1a2b3c4d" comment "net/ctr/eth0"
//     set allowed { type ifname . ether_addr; }  # "veth1a2b3c4d" . 0a:58:0a:01:00:02, same comment
//     chain prerouting {
//       type filter hook prerouting priority -300; policy accept;
//       iifname @guarded iifname . ether saddr != @allowed drop
//     }
//   }
import { formatMac } from "../mac";
import { cstr } from "../netlink/encoding";
import { getElement, listElements, NFPROTO, type SetElement, tableExists, withNetfilter } from "../netlink/nftables";
import type { NetlinkSocket } from "../netlink/socket";
import type { Running } from "../process";
import { type Keep, staleIn } from "./common";
import { dropElement, mustFinish, mustRunBatch, script, startBatch, tryBatch } from "./nft";

const T = "bridge weft";
const IFNAMSIZ = 16;

// Creations only (no-ops where they exist), so the element commands always have their sets.
const SETS = [`add table ${T}`, `add set ${T} guarded { type ifname; }`, `add set ${T} allowed { type ifname . ether_addr; }`];

// The whole table, its one rule rewritten: only where it is missing or stale elements go.
const DECLARE = [
  ...SETS,
  `add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`,
  `flush chain ${T} prerouting`,
  `add rule ${T} prerouting iifname @guarded iifname . ether saddr != @allowed drop`,
];

export interface SpoofGuard {
  /** the pod's key (firewall/common podKey), the elements' comment */
  key: string;
  /** the host end of the pod's veth: its bridge port */
  port: string;
  /** the pod interface's MAC, "0a:58:…" */
  mac: string;
}

interface Found {
  port: string;
  mac?: string;
  comment?: string;
}

/** The port (and MAC) an element of `guarded` or `allowed` names: ifname bytes, NUL-padded, then the MAC. */
function decode(e: SetElement): Found {
  const port = cstr(e.key.subarray(0, IFNAMSIZ));
  const found: Found = e.key.length > IFNAMSIZ ? { port, mac: formatMac(e.key.subarray(IFNAMSIZ, IFNAMSIZ + 6)) } : { port };
  if (e.comment !== undefined) found.comment = e.comment;
  return found;
}

/** "add; delete" of each: gone afterwards whether or not a concurrent call removed it first. */
function deletions(found: Found[]): string[] {
  const cmds: string[] = [];
  for (const f of found) {
    const [set, elem] = f.mac ? ["allowed", `"${f.port}" . ${f.mac}`] : ["guarded", `"${f.port}"`];
    for (const c of dropElement(set, elem, elem, T)) cmds.push(c);
  }
  return cmds;
}

/** Both sets' elements, decoded; null without the table. */
function elements(nl: NetlinkSocket): Found[] | null {
  if (!tableExists(nl, NFPROTO.BRIDGE, "weft")) return null;
  return [...listElements(nl, NFPROTO.BRIDGE, "weft", "guarded"), ...listElements(nl, NFPROTO.BRIDGE, "weft", "allowed")].map(decode);
}

/**
 * Lets only `mac` in from `port`. One `nft` of pure creations where the table exists; else
 * (first use on the host, or a stale element of the port's name: a pod whose DEL never
 * came, as the veth name is free again) one batch that sets the table up and replaces them.
 */
export function guardPort(g: SpoofGuard): void {
  const add = [
    `add element ${T} guarded { "${g.port}" comment "${g.key}" }`,
    `add element ${T} allowed { "${g.port}" . ${g.mac} comment "${g.key}" }`,
  ];
  // The one element that tells: the port's in `guarded` (its name, NUL-padded). Both sets are
  // read only when there is one, left by a pod whose DEL never came.
  const port = Buffer.alloc(IFNAMSIZ);
  port.write(g.port);
  const stale = withNetfilter((nl) => {
    if (!tableExists(nl, NFPROTO.BRIDGE, "weft")) return null;
    return getElement(nl, NFPROTO.BRIDGE, "weft", "guarded", port) ? (elements(nl) ?? []).filter((f) => f.port === g.port) : [];
  });
  const create = [
    `create element ${T} guarded { "${g.port}" comment "${g.key}" }`,
    `create element ${T} allowed { "${g.port}" . ${g.mac} comment "${g.key}" }`,
  ];
  if (stale !== null && stale.length === 0 && tryBatch(create)) return;
  mustRunBatch(`adding the MAC spoof check for pod ${g.key}`, script([...DECLARE, ...deletions(stale ?? []), ...add]));
}

/**
 * Starts removing the pod's elements, found by its comment, for the caller to wait on with
 * finishUnguard (DEL lets it run while the kernel deletes the veth); null when there are none.
 */
export function startUnguard(key: string): Running | null {
  const mine = withNetfilter(elements)?.filter((f) => f.comment === key) ?? [];
  return mine.length ? startBatch(script([...SETS, ...deletions(mine)])) : null;
}

export function finishUnguard(key: string, running: Running): void {
  mustFinish(`removing the MAC spoof check for pod ${key}`, running);
}

/** GC: removes the elements of every pod of the network that `keep` does not list. */
export function unguardStale(keep: Keep): void {
  const isStale = staleIn(keep);
  const stale = withNetfilter(elements)?.filter((f) => f.comment !== undefined && isStale(f.comment)) ?? [];
  if (stale.length) mustRunBatch("removing the MAC spoof checks of pods gone", script([...SETS, ...deletions(stale)]));
}

/** Removes the two elements guardPort() added (an ADD's rollback: no set is read). */
export function unguardPort(g: SpoofGuard): void {
  mustRunBatch(`removing the MAC spoof check for pod ${g.key}`, script([...SETS, ...deletions([{ port: g.port }, { port: g.port, mac: g.mac }])]));
}
