import { describe, expect, it } from "vitest";
import { checkKnownArgs, parseCniArgs } from "../../../shared/cni/args";
import { CniError } from "../../../shared/cni/errors";
import { cniErrorOf } from "../../helpers/cni-error";

describe("CNI_ARGS", () => {
  it("parses K=V pairs, tolerating empty input and empty segments", () => {
    expect(parseCniArgs("").size).toBe(0);
    expect([...parseCniArgs("A=1;B=x=y;")]).toEqual([["A", "1"], ["B", "x=y"]]);
    expect(parseCniArgs("EMPTY=").get("EMPTY")).toBe("");
  });

  it("rejects a pair without key or '=' with code 4", () => {
    for (const bad of ["FOO", "=v", "A=1;junk"]) {
      expect(cniErrorOf(() => parseCniArgs(bad)).code).toBe(4);
    }
  });

  it("rejects unknown keys unless IgnoreUnknown is 1/true", () => {
    expect(() => checkKnownArgs(parseCniArgs("FOO=bar"), [])).toThrow(/unknown keys FOO/);
    expect(() => checkKnownArgs(parseCniArgs("FOO=bar;IgnoreUnknown=1"), [])).not.toThrow();
    expect(() => checkKnownArgs(parseCniArgs("FOO=bar;IgnoreUnknown=TRUE"), [])).not.toThrow();
    expect(() => checkKnownArgs(parseCniArgs("FOO=bar;IgnoreUnknown=0"), [])).toThrow(CniError);
    expect(() => checkKnownArgs(parseCniArgs("IP=10.0.0.5"), ["IP"])).not.toThrow();
  });

  it("always accepts the keys containerd sends", () => {
    const s = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u";
    expect(() => checkKnownArgs(parseCniArgs(s), [])).not.toThrow();
  });
});
