import { describe, expect, it } from "vitest";
import { parseBridgeConf } from "../../../plugins/bridge/config";
import { cniErrorOf } from "../../helpers/cni-error";

const parse = (extra: Record<string, unknown>) =>
  parseBridgeConf({ cniVersion: "1.0.0", name: "net1", type: "bridge", ipam: { type: "static" }, ...extra }, new Map());

describe("parseBridgeConf: vlanTrunk", () => {
  it("collects ranges and single ids into sorted, merged ranges", () => {
    const trunk = [{ minID: 100, maxID: 102 }, { id: 101 }, { id: 103 }, { id: 200 }, { minID: 5, maxID: 6, id: 7 }];
    expect(parse({ vlanTrunk: trunk }).vlanTrunk).toEqual([
      [5, 7],
      [100, 103],
      [200, 200],
    ]);
    expect(parse({}).vlanTrunk).toEqual([]);
  });

  it.each([
    [[{ minID: 0, maxID: 5 }], "incorrect trunk minID parameter"],
    [[{ minID: 5, maxID: 4095 }], "incorrect trunk maxID parameter"],
    [[{ minID: 9, maxID: 5 }], "minID is greater than maxID in trunk parameter"],
    [[{ minID: 5 }], "minID and maxID should be configured simultaneously, maxID is missing"],
    [[{ maxID: 5 }], "minID and maxID should be configured simultaneously, minID is missing"],
    [[{ id: 0 }], "incorrect trunk id parameter"],
  ])("refuses %j with the reference's message, code 7", (vlanTrunk, msg) => {
    const e = cniErrorOf(() => parse({ vlanTrunk }));
    expect([e.code, e.message]).toEqual([7, msg]);
  });

  it("refuses vlan together with vlanTrunk", () => {
    const e = cniErrorOf(() => parse({ vlan: 10, vlanTrunk: [{ id: 20 }] }));
    expect([e.code, e.message]).toEqual([7, "cannot set vlan and vlanTrunk at the same time"]);
  });
});

describe("parseBridgeConf: ipam and dns", () => {
  it("no IPAM type is a layer-2 network", () => {
    expect(parse({ ipam: undefined }).ipam).toEqual({ type: "" });
    expect(parse({ ipam: {} }).ipam).toEqual({ type: "" });
  });

  it("keeps the config's dns when any key is set, even an empty list, as the reference", () => {
    expect(parse({ dns: { nameservers: [] } }).dns).toEqual({ nameservers: [] });
    expect(parse({ dns: { domain: "example.org" } }).dns).toEqual({ domain: "example.org" });
    expect(parse({ dns: {} }).dns).toBeUndefined();
    expect(parse({}).dns).toBeUndefined();
  });
});
