import { describe, expect, it } from "vitest";
import { foldKeys } from "../../../shared/cni/fold-keys";

const schema = {
  type: "object",
  properties: {
    isGateway: { type: "boolean" },
    ipam: {
      type: "object",
      properties: {
        ranges: { type: "array", items: { type: "array", items: { type: "object", properties: { subnet: { type: "string" } } } } },
      },
    },
  },
};

describe("foldKeys", () => {
  it("renames keys that match a property only case-insensitively, at every level, as Go's decoder reads them", () => {
    const data = { IsGateway: true, IPAM: { RANGES: [[{ Subnet: "10.0.0.0/24" }]] }, other: 1, Unknown: 2 };
    foldKeys(data, schema);
    expect(data).toEqual({ isGateway: true, ipam: { ranges: [[{ subnet: "10.0.0.0/24" }]] }, other: 1, Unknown: 2 });
  });

  it("lets the last of several keys naming one property win, as Go; leaves exact keys and non-objects alone", () => {
    const later = { isGateway: false, IsGateway: true };
    foldKeys(later, schema);
    expect(later).toEqual({ isGateway: true });
    const earlier = { ISGATEWAY: true, isGateway: false };
    foldKeys(earlier, schema);
    expect(earlier).toEqual({ isGateway: false });
    const same = { isGateway: true, ipam: "x" };
    foldKeys(same, schema);
    expect(same).toEqual({ isGateway: true, ipam: "x" });
    expect(() => foldKeys(null, schema)).not.toThrow();
  });

  it("does not take inherited names for properties", () => {
    const data = { Constructor: 1, toString: 2 };
    foldKeys(data, schema);
    expect(data).toEqual({ Constructor: 1, toString: 2 });
  });
});
