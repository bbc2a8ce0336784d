import { describe, expect, it } from "vitest";
import { CniError, cniErrorJson, ErrorCode } from "../../../shared/cni/errors";

describe("CniError JSON", () => {
  it("carries cniVersion, code, msg and details", () => {
    const e = new CniError(ErrorCode.InvalidConfig, "bad", "why");
    expect(JSON.parse(cniErrorJson(e, "1.0.0"))).toEqual({ cniVersion: "1.0.0", code: 7, msg: "bad", details: "why" });
  });

  it("omits empty details", () => {
    const json = JSON.parse(cniErrorJson(new CniError(ErrorCode.TryAgainLater, "busy"), "1.1.0"));
    expect(json).toEqual({ cniVersion: "1.1.0", code: 11, msg: "busy" });
    expect("details" in json).toBe(false);
  });

  it("is an Error with the message as msg", () => {
    const e = new CniError(ErrorCode.IO, "disk");
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe("disk");
    expect(e.code).toBe(5);
  });
});
