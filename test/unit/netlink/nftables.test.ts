// What the agent's kernel watch reads from an nf_tables notification (uapi numbers written
// out here, so a wrong constant in the module shows).
import { describe, expect, it } from "vitest";
import { attr, nfgenmsg, strz } from "../../../shared/netlink/encoding";
import { nftChangeOf } from "../../../shared/netlink/nftables";

const NFNL_SUBSYS_NFTABLES = 10;
const msg = (op: number, family: number, attrs: Buffer[]) => ({
  type: (NFNL_SUBSYS_NFTABLES << 8) | op,
  flags: 0,
  seq: 0,
  data: Buffer.concat([nfgenmsg.format({ family }), ...attrs]),
});
const name = (type: number, s: string) => attr(type, strz(s));

describe("nftChangeOf", () => {
  it("names the family and table of a table, and the chain of a chain or rule", () => {
    // NFT_MSG_NEWCHAIN (3): NFTA_CHAIN_TABLE (1), NFTA_CHAIN_NAME (3); family ip (2)
    expect(nftChangeOf(msg(3, 2, [name(1, "filter"), name(3, "FORWARD")]))).toEqual({ family: 2, table: "filter", chain: "FORWARD" });
    // NFT_MSG_DELTABLE (2): NFTA_TABLE_NAME (1)
    expect(nftChangeOf(msg(2, 2, [name(1, "weft-overlay")]))).toEqual({ family: 2, table: "weft-overlay" });
    // NFT_MSG_DELRULE (8): NFTA_RULE_TABLE (1), NFTA_RULE_CHAIN (2); family inet (1)
    expect(nftChangeOf(msg(8, 1, [name(1, "weft"), name(2, "forward")]))).toEqual({ family: 1, table: "weft", chain: "forward" });
  });

  it("ignores set elements, generations and other subsystems", () => {
    expect(nftChangeOf(msg(12, 1, [name(1, "weft")]))).toBeNull(); // NFT_MSG_NEWSETELEM
    expect(nftChangeOf(msg(15, 0, []))).toBeNull(); // NFT_MSG_NEWGEN
    expect(nftChangeOf({ type: 16, flags: 0, seq: 0, data: Buffer.alloc(16) })).toBeNull(); // RTM_NEWLINK
  });
});
