import { describe, expect, it } from "vitest";
import { getRuntimeConfigKey, normalizeKeys } from "../../../shared/cni/runtime-config";

describe("runtimeConfig", () => {
  it("finds keys case-insensitively, preferring an exact match", () => {
    expect(getRuntimeConfigKey({ PortMappings: [1] }, "portMappings")).toEqual([1]);
    expect(getRuntimeConfigKey({ portmappings: 1, portMappings: 2 }, "portMappings")).toBe(2);
    expect(getRuntimeConfigKey({}, "ips")).toBeUndefined();
    expect(getRuntimeConfigKey(undefined, "ips")).toBeUndefined();
    expect(getRuntimeConfigKey([1], "0")).toBeUndefined();
  });

  it("normalises containerd's capitalised portMappings to canonical names", () => {
    const rc = { portMappings: [{ HostPort: 18091, ContainerPort: 80, Protocol: "tcp", HostIP: "" }] };
    const canonical = ["hostPort", "containerPort", "protocol", "hostIP"];
    expect(normalizeKeys(getRuntimeConfigKey(rc, "portMappings"), canonical)).toEqual([
      { hostPort: 18091, containerPort: 80, protocol: "tcp", hostIP: "" },
    ]);
  });

  it("keeps unknown keys and non-objects, and lets an exact key win", () => {
    expect(normalizeKeys({ HOSTPORT: 1, hostPort: 2, extra: 3 }, ["hostPort"])).toEqual({ hostPort: 2, extra: 3 });
    expect(normalizeKeys([5, null], ["a"])).toEqual([5, null]);
  });
});
