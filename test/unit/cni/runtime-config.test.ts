import { describe, expect, it } from "vitest";
import { getRuntimeConfigKey } from "../../../shared/cni/runtime-config";

describe("runtimeConfig", () => {
  it("finds keys case-insensitively, the last of several winning, as Go's decoder", () => {
    expect(getRuntimeConfigKey({ PortMappings: [1] }, "portMappings")).toEqual([1]);
    expect(getRuntimeConfigKey({ portmappings: 1, portMappings: 2 }, "portMappings")).toBe(2);
    expect(getRuntimeConfigKey({ portMappings: 2, PORTMAPPINGS: 3 }, "portMappings")).toBe(3);
    expect(getRuntimeConfigKey({}, "ips")).toBeUndefined();
    expect(getRuntimeConfigKey(undefined, "ips")).toBeUndefined();
    expect(getRuntimeConfigKey([1], "0")).toBeUndefined();
  });
});
