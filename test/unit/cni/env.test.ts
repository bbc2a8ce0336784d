import { describe, expect, it } from "vitest";
import { readEnv } from "../../../shared/cni/env";
import { CniError } from "../../../shared/cni/errors";
import { cniErrorOf } from "../../helpers/cni-error";

const base = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "abc123", CNI_NETNS: "/var/run/netns/x", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" };

const err = (env: NodeJS.ProcessEnv): CniError => cniErrorOf(() => readEnv(env));

describe("readEnv", () => {
  it("reads a full ADD environment", () => {
    const env = readEnv({ ...base, CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=p", CNI_PATH: "/a::/b:" });
    expect(env).toMatchObject({ command: "ADD", containerId: "abc123", netns: "/var/run/netns/x", ifname: "eth0", path: ["/a", "/b"] });
    expect(env.args.get("K8S_POD_NAME")).toBe("p");
  });

  it("requires a known CNI_COMMAND (code 4)", () => {
    expect(err({}).code).toBe(4);
    expect(err({ CNI_COMMAND: "FOO" }).message).toMatch(/unknown CNI_COMMAND: FOO/);
    expect(err({ ...base, CNI_COMMAND: "add" }).code).toBe(4);
  });

  it("lists every missing variable for ADD and CHECK", () => {
    const e = err({ CNI_COMMAND: "CHECK" });
    expect(e.code).toBe(4);
    expect(e.message).toContain("CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH");
  });

  it("lets DEL run without a netns", () => {
    expect(readEnv({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0" }).netns).toBe("");
    expect(err({ CNI_COMMAND: "DEL", CNI_IFNAME: "eth0" }).message).toContain("CNI_CONTAINERID");
  });

  it("validates nothing for VERSION", () => {
    const env = readEnv({ CNI_COMMAND: "VERSION", CNI_IFNAME: "way/too/long/and:bad", CNI_CONTAINERID: "-", CNI_ARGS: "junk" });
    expect(env.command).toBe("VERSION");
  });

  it("needs nothing for STATUS and GC", () => {
    expect(readEnv({ CNI_COMMAND: "STATUS" }).path).toEqual([]);
    expect(readEnv({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }).path).toEqual(["/opt/cni/bin"]);
  });

  it("rejects bad CNI_CONTAINERID naming the variable", () => {
    for (const id of ["-abc", "a b", "a/b", "_x"]) {
      const e = err({ ...base, CNI_CONTAINERID: id });
      expect(e.code).toBe(4);
      expect(e.message).toContain("CNI_CONTAINERID");
    }
    expect(readEnv({ ...base, CNI_CONTAINERID: "a_b.c-D9" }).containerId).toBe("a_b.c-D9");
  });

  it("rejects bad CNI_IFNAME naming the variable", () => {
    for (const name of ["a/b", "a:b", "a b", "tab\there", ".", "..", "sixteen-chars-xx", "ü".repeat(8)]) {
      const e = err({ ...base, CNI_IFNAME: name });
      expect(e.code).toBe(4);
      expect(e.message).toContain("CNI_IFNAME");
    }
    expect(readEnv({ ...base, CNI_IFNAME: "fifteen-chars-x" }).ifname).toBe("fifteen-chars-x");
  });

  it("rejects malformed CNI_ARGS with code 4 when a plugin reads them", () => {
    const env = readEnv({ ...base, CNI_ARGS: "novalue" });
    expect(cniErrorOf(() => env.args).code).toBe(4);
  });
});
