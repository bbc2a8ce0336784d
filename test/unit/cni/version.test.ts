import { describe, expect, it } from "vitest";
import { CniError } from "../../../shared/cni/errors";
import { compareVersions, configVersion, isSupported, requireVersionFor, SUPPORTED_VERSIONS, versionReply } from "../../../shared/cni/version";

function codeOf(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof CniError ? e.code : -1;
  }
  return undefined;
}

describe("versions", () => {
  it("supports exactly 0.3.0 through 1.1.0", () => {
    expect([...SUPPORTED_VERSIONS]).toEqual(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    expect(isSupported("0.4.0")).toBe(true);
    expect(isSupported("0.2.0")).toBe(false);
    expect(isSupported("1.0")).toBe(false);
    expect(isSupported(1)).toBe(false);
  });

  it("compares numerically", () => {
    expect(compareVersions("0.10.0", "0.4.0")).toBe(1);
    expect(compareVersions("0.3.1", "0.4.0")).toBe(-1);
    expect(compareVersions("1.1.0", "1.1.0")).toBe(0);
    expect(codeOf(() => compareVersions("abc", "1.0.0"))).toBe(1);
  });

  it("refuses a config without cniVersion or with an unknown one (code 1)", () => {
    expect(codeOf(() => configVersion({}))).toBe(1);
    expect(codeOf(() => configVersion({ cniVersion: "" }))).toBe(1);
    expect(codeOf(() => configVersion({ cniVersion: "0.2.0" }))).toBe(1);
    expect(codeOf(() => configVersion({ cniVersion: "9.9.9" }))).toBe(1);
    expect(() => configVersion({ cniVersion: "9.9.9" })).toThrow(/0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
    expect(codeOf(() => configVersion({ cniVersion: 1 }))).toBe(6);
    expect(configVersion({ cniVersion: "0.3.1" })).toBe("0.3.1");
  });

  it("gates verbs by minimum version", () => {
    expect(codeOf(() => requireVersionFor("CHECK", "0.3.1", "0.4.0"))).toBe(1);
    expect(codeOf(() => requireVersionFor("CHECK", "0.4.0", "0.4.0"))).toBeUndefined();
  });

  it("answers VERSION with the asked version if supported, else 1.1.0", () => {
    expect(JSON.parse(versionReply('{"cniVersion":"0.4.0"}'))).toEqual({ cniVersion: "0.4.0", supportedVersions: [...SUPPORTED_VERSIONS] });
    expect(JSON.parse(versionReply("")).cniVersion).toBe("1.1.0");
    expect(JSON.parse(versionReply('{"cniVersion":"0.2.0"}')).cniVersion).toBe("1.1.0");
    expect(JSON.parse(versionReply("not json")).cniVersion).toBe("1.1.0");
  });
});
