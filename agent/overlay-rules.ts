// The overlay's packet-filter rules, in one nftables table of its own, `ip weft-overlay`,
// written as one `nft -f -` batch that deletes and re-adds it, so no packet ever sees it
// half-built:
// - masquerade (--masquerade), as flannel does: traffic from this node's pods to anything
//   outside the cluster CIDR leaves with the node's address, and pod-to-pod traffic keeps
//   its source. Traffic from outside the cluster (the host itself, a client routed through
//   it) to another node's pods leaves with this node's address too, so their replies come
//   back through this node; to this node's own pods it keeps its source.
// - forward marks, only while iptables' FORWARD policy drops (Docker sets it, possibly
//   after pods exist): traffic to and from the cluster CIDR is marked for the accept rule
//   shared/firewall/iptables.ts keeps in FORWARD, so pods keep talking across nodes. The
//   comment names this node's pod CIDR, which the bridge plugin looks for (firewall/index.ts).
//
//   table ip weft-overlay {
//     chain postrouting {
//       type nat hook postrouting priority srcnat; policy accept;
//       ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return comment "weft-overlay 1a2b3c4d"
//       ip saddr 10.244.1.0/24 ip daddr != 224.0.0.0/4 masquerade fully-random comment "weft-overlay 1a2b3c4d"
//       ip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return comment "weft-overlay 1a2b3c4d"
//       ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random comment "weft-overlay 1a2b3c4d"
//     }
//     chain forward {
//       type filter hook forward priority filter - 1; policy accept;
//       ip saddr 10.244.0.0/16 meta mark set meta mark | 0x1000 comment "weft-overlay 1a2b3c4d marks 10.244.1.0/24"
//       ip daddr 10.244.0.0/16 meta mark set meta mark | 0x1000 comment "weft-overlay 1a2b3c4d marks 10.244.1.0/24"
//     }
//   }
//
// Every rule carries a hash of the whole rule set in its comment. Checking that the table is
// as wanted is then a netlink rule dump counting rules with and without that hash — no `nft`
// process (~4 ms, ~20 ms for a batch that deletes) on a resync where nothing changed.
import { hash, marksNote, MULTICAST, OVERLAY_FORWARD_CHAIN, OVERLAY_TABLE } from "../shared/firewall/common";
import { FORWARD_HOOK, MARK_POD, POSTROUTING_HOOK, mustRunBatch } from "../shared/firewall/nft";
import { countRules, NFPROTO, tableExists, tableLayout } from "../shared/netlink/nftables";
import type { NetlinkSocket } from "../shared/netlink/socket";

const FAMILY = "ip";
const POSTROUTING = "postrouting";

export interface OverlayRulesSpec {
  podCIDR: string;
  clusterCIDR: string;
  masquerade: boolean;
  /** mark forwarded pod traffic: iptables' FORWARD chain drops by policy */
  forwardMarks: boolean;
}

interface Chain {
  name: string;
  declaration: string;
  rules: string[];
  /** said in each rule's comment after the tag */
  note?: string;
}

/** The chains the spec wants (none: no table at all), with their rule lines in order. */
export function overlayChains(s: OverlayRulesSpec): Chain[] {
  return [
    ...(s.masquerade
      ? [
          {
            name: POSTROUTING,
            declaration: POSTROUTING_HOOK,
            rules: [
              `ip saddr ${s.podCIDR} ip daddr ${s.clusterCIDR} return`,
              `ip saddr ${s.podCIDR} ip daddr != ${MULTICAST[4]} masquerade fully-random`,
              `ip saddr != ${s.clusterCIDR} ip daddr ${s.podCIDR} return`,
              `ip saddr != ${s.clusterCIDR} ip daddr ${s.clusterCIDR} masquerade fully-random`,
            ],
          },
        ]
      : []),
    ...(s.forwardMarks
      ? [
          {
            name: OVERLAY_FORWARD_CHAIN,
            declaration: FORWARD_HOOK,
            rules: [`ip saddr ${s.clusterCIDR} ${MARK_POD}`, `ip daddr ${s.clusterCIDR} ${MARK_POD}`],
            note: marksNote(s.podCIDR),
          },
        ]
      : []),
  ];
}

/** Short hash that identifies a rule set; written into each rule's comment. */
export function rulesTag(chains: Chain[]): string {
  const text = chains.map((c) => `${c.name}: ${c.rules.join("\n")}${c.note ? `\n${c.note}` : ""}`).join("\n");
  return `${OVERLAY_TABLE} ${hash(text, 8)}`;
}

/** The `nft -f -` batch that (re)creates the table with exactly these chains. */
export function overlayBatch(chains: Chain[]): string {
  const tag = rulesTag(chains);
  const t = `${FAMILY} ${OVERLAY_TABLE}`;
  // Removing the table and making it anew, in one transaction: atomic for the packet
  // path, and a chain no longer wanted goes with it.
  return [
    removeBatch().trimEnd(),
    `add table ${t}`,
    ...chains.flatMap((c) => {
      const comment = c.note ? `${tag} ${c.note}` : tag;
      return [`add chain ${t} ${c.name} { ${c.declaration} }`, ...c.rules.map((r) => `add rule ${t} ${c.name} ${r} comment "${comment}"`)];
    }),
    "",
  ].join("\n");
}

/** The batch that removes the table, whether or not it exists (nft 1.0.6 has no `destroy`). */
export function removeBatch(): string {
  return `add table ${FAMILY} ${OVERLAY_TABLE}\ndelete table ${FAMILY} ${OVERLAY_TABLE}\n`;
}

/**
 * Whether the table is as the batch makes it: no flags (dormant, owner, …), exactly these
 * chains, none dropping by policy, and exactly these chains' rules (one rule dump per chain).
 */
function inPlace(nl: NetlinkSocket, chains: Chain[]): boolean {
  const layout = tableLayout(nl, NFPROTO.IPV4, OVERLAY_TABLE);
  if (!layout || layout.flags !== 0 || layout.chains.some((c) => c.policy === "drop")) return false;
  const names = (list: Array<{ name: string }>): string => list.map((c) => c.name).sort().join(" ");
  if (names(layout.chains) !== names(chains)) return false;
  // Exactly the wanted chains are there: only theirs are dumped.
  const tag = rulesTag(chains);
  return chains.every((c) => {
    const { total, matching } = countRules(nl, NFPROTO.IPV4, OVERLAY_TABLE, c.name, tag);
    return total === c.rules.length && matching === total;
  });
}

/**
 * Converges the table to the spec (no table when it wants no chain), reading what is there
 * over `nl`, a netfilter socket. Returns a log line for the change made, or null.
 */
export function convergeOverlayRules(s: OverlayRulesSpec, nl: NetlinkSocket): string | null {
  const chains = overlayChains(s);
  if (chains.length === 0) {
    if (!tableExists(nl, NFPROTO.IPV4, OVERLAY_TABLE)) return null;
    mustRunBatch(`removing table ${OVERLAY_TABLE}`, removeBatch());
    return `nft delete table ${FAMILY} ${OVERLAY_TABLE}`;
  }
  if (inPlace(nl, chains)) return null;
  mustRunBatch(`converging table ${OVERLAY_TABLE}`, overlayBatch(chains));
  const what = [
    ...(s.masquerade ? [`masquerade ${s.podCIDR} to outside ${s.clusterCIDR}, and outside to other nodes' pods`] : []),
    ...(s.forwardMarks ? [`mark ${s.clusterCIDR} for FORWARD accept (its policy drops)`] : []),
  ];
  return `nft table ${FAMILY} ${OVERLAY_TABLE}: ${what.join("; ")}`;
}
