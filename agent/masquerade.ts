// The overlay's source NAT: traffic from this node's pods to anything outside the cluster
// CIDR leaves with the node's address; pod-to-pod traffic (inside the cluster CIDR) keeps
// its source. One nftables table of its own, `ip weft-overlay`, written as one `nft -f -`
// batch that flushes and refills it, so no packet ever sees it half-built.
//
//   table ip weft-overlay {
//     chain postrouting {
//       type nat hook postrouting priority srcnat; policy accept;
//       ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return comment "weft-overlay 1a2b3c4d"
//       ip saddr 10.244.1.0/24 ip daddr != 224.0.0.0/4 masquerade fully-random comment "weft-overlay 1a2b3c4d"
//     }
//   }
//
// Every rule carries a hash of the whole rule set in its comment. Checking that the table is
// as wanted is then a netlink rule dump counting rules with and without that hash — no `nft`
// process (~4 ms, ~20 ms for a batch that flushes) on a resync where nothing changed.
import { createHash } from "node:crypto";
import { mustRun } from "../shared/process";
import { countRulesContaining, NFPROTO, openNetfilter, tableExists } from "../shared/netlink/nftables";

export const NAT_TABLE = "weft-overlay";
const FAMILY = "ip";
const CHAIN = "postrouting";
const MULTICAST = "224.0.0.0/4";

export interface MasqueradeSpec {
  podCIDR: string;
  clusterCIDR: string;
}

/** The rule lines (without `add rule …` framing or comment), in order. */
export function masqueradeRules(s: MasqueradeSpec): string[] {
  return [
    `ip saddr ${s.podCIDR} ip daddr ${s.clusterCIDR} return`,
    `ip saddr ${s.podCIDR} ip daddr != ${MULTICAST} masquerade fully-random`,
  ];
}

/** Short hash that identifies a rule set; written into each rule's comment. */
export function rulesTag(rules: string[]): string {
  return `${NAT_TABLE} ${createHash("sha256").update(rules.join("\n")).digest("hex").slice(0, 8)}`;
}

/** The `nft -f -` batch that (re)creates the table with exactly these rules. */
export function masqueradeBatch(s: MasqueradeSpec): string {
  const rules = masqueradeRules(s);
  const tag = rulesTag(rules);
  const t = `${FAMILY} ${NAT_TABLE}`;
  return [
    `add table ${t}`,
    // `flush table` empties every chain of the table; the chain (re)declaration below is a
    // no-op when it exists. All in one transaction: atomic for the packet path.
    `flush table ${t}`,
    `add chain ${t} ${CHAIN} { type nat hook postrouting priority srcnat; policy accept; }`,
    ...rules.map((r) => `add rule ${t} ${CHAIN} ${r} comment "${tag}"`),
    "",
  ].join("\n");
}

/** The batch that removes the table, whether or not it exists (nft 1.0.6 has no `destroy`). */
export function removeBatch(): string {
  return `add table ${FAMILY} ${NAT_TABLE}\ndelete table ${FAMILY} ${NAT_TABLE}\n`;
}

function nft(batch: string): void {
  mustRun("nft", "nft", ["-f", "-"], batch);
}

/** Whether the table holds exactly the rules of `s` (checked over netlink). */
export function masqueradeInPlace(s: MasqueradeSpec): boolean {
  const rules = masqueradeRules(s);
  const nl = openNetfilter();
  try {
    const total = countRulesContaining(nl, NFPROTO.IPV4, NAT_TABLE, CHAIN, "");
    return total === rules.length && countRulesContaining(nl, NFPROTO.IPV4, NAT_TABLE, CHAIN, rulesTag(rules)) === total;
  } finally {
    nl.close();
  }
}

/**
 * Converges the NAT table: with a spec, to exactly its rules; with null (masquerade off),
 * to no table. Returns a log line for the change made, or null when none was needed.
 */
export function convergeMasquerade(s: MasqueradeSpec | null): string | null {
  if (s) {
    if (masqueradeInPlace(s)) return null;
    nft(masqueradeBatch(s));
    return `nft table ${FAMILY} ${NAT_TABLE}: masquerade ${s.podCIDR} -> !${s.clusterCIDR}`;
  }
  const nl = openNetfilter();
  let exists: boolean;
  try {
    exists = tableExists(nl, NFPROTO.IPV4, NAT_TABLE);
  } finally {
    nl.close();
  }
  if (!exists) return null;
  nft(removeBatch());
  return `nft delete table ${FAMILY} ${NAT_TABLE}`;
}
