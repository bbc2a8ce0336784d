// Bridge port VLAN requests, checked against the bytes `bridge vlan add` sends.
import { describe, expect, it } from "vitest";
import { attrList, attrMap } from "../../../shared/netlink/encoding";
import { addPortVlanRanges } from "../../../shared/netlink/bridge";
import { recorder } from "../../helpers/netlink-recorder";

const RTM_SETLINK = 19;
const IFLA_AF_SPEC = 26;
const IFLA_BRIDGE_VLAN_INFO = 2;

/** The (flags, vid) pairs of a request's IFLA_AF_SPEC, after its 16-byte ifinfomsg. */
function vlanInfos(payload: Buffer): Array<[number, number]> {
  const spec = attrMap(payload.subarray(16)).get(IFLA_AF_SPEC)!;
  return attrList(spec)
    .filter(([type]) => type === IFLA_BRIDGE_VLAN_INFO)
    .map(([, d]) => [d.readUInt16LE(0), d.readUInt16LE(2)]);
}

describe("addPortVlanRanges", () => {
  it("sends a range as RANGE_BEGIN and RANGE_END entries, tagged, in one RTM_SETLINK on the port", () => {
    const { nl, sent } = recorder();
    addPortVlanRanges(nl, 7, [[100, 102]]);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.type).toBe(RTM_SETLINK);
    expect(sent[0]!.payload[0]).toBe(7); // family AF_BRIDGE
    expect(sent[0]!.payload.readInt32LE(4)).toBe(7); // the port's index
    expect(vlanInfos(sent[0]!.payload)).toEqual([
      [8, 100],
      [16, 102],
    ]);
  });

  it("sends a single VLAN without range flags", () => {
    const { nl, sent } = recorder();
    addPortVlanRanges(nl, 7, [[200, 200]]);
    expect(vlanInfos(sent[0]!.payload)).toEqual([[0, 200]]);
  });

  it("sends several ranges in one request", () => {
    const { nl, sent } = recorder();
    addPortVlanRanges(nl, 7, [
      [100, 102],
      [200, 200],
      [300, 301],
    ]);
    expect(sent).toHaveLength(1);
    expect(vlanInfos(sent[0]!.payload)).toEqual([
      [8, 100],
      [16, 102],
      [0, 200],
      [8, 300],
      [16, 301],
    ]);
  });
});
