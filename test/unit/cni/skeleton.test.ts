import { describe, expect, it } from "vitest";
import { CniError, ErrorCode } from "../../../shared/cni/errors";
import type { Result } from "../../../shared/cni/result";
import { type Attachment, type Plugin, type PluginContext, runPlugin } from "../../../shared/cni/skeleton";
import { SUPPORTED_VERSIONS } from "../../../shared/cni/version";

interface Conf {
  name: string;
  ready?: boolean;
}

// A fixture plugin that records what the skeleton handed it.
function fixture(overrides: Partial<Plugin<Conf>> = {}) {
  const seen: { verb: string; ctx: PluginContext<Conf> | undefined; attachments?: Attachment[] }[] = [];
  const result: Result = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0", sandbox: "/ns", mtu: 1450 }],
    ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0", priority: 5 }],
  };
  const plugin: Plugin<Conf> = {
    name: "fixture",
    parseConfig(raw) {
      if (raw["bad"]) throw new CniError(ErrorCode.InvalidConfig, "invalid fixture config: bad");
      return { name: String(raw["name"]), ready: raw["ready"] !== false };
    },
    add(ctx) {
      seen.push({ verb: "ADD", ctx });
      return result;
    },
    del(ctx) {
      seen.push({ verb: "DEL", ctx });
    },
    check(ctx) {
      seen.push({ verb: "CHECK", ctx });
    },
    status({ conf }) {
      if (!conf.ready) throw new CniError(ErrorCode.NotReady, "not ready");
      seen.push({ verb: "STATUS", ctx: undefined });
    },
    gc({ validAttachments }) {
      seen.push({ verb: "GC", ctx: undefined, attachments: validAttachments });
    },
    knownArgs: ["IP"],
    ...overrides,
  };
  return { plugin, seen };
}

const addEnv = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/t", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" };

async function run(env: NodeJS.ProcessEnv, stdin: string | object, plugin = fixture().plugin) {
  let out = "";
  const code = await runPlugin(plugin, { env, stdin: typeof stdin === "string" ? stdin : JSON.stringify(stdin), stdout: (s) => (out += s) });
  return { code, out, json: out === "" ? undefined : (JSON.parse(out) as Record<string, unknown>) };
}

const conf = (v: string, extra: object = {}) => ({ cniVersion: v, name: "net1", type: "fixture", ...extra });

describe("runPlugin: VERSION", () => {
  it("works without NETNS/IFNAME/PATH and echoes a supported cniVersion", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"0.4.0"}');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: "0.4.0", supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  it("answers 1.1.0 for empty stdin and ignores dummy env values", async () => {
    const r = await run({ CNI_COMMAND: "VERSION", CNI_IFNAME: "dummy/x", CNI_CONTAINERID: "-" }, "");
    expect(r.code).toBe(0);
    expect(r.json?.["cniVersion"]).toBe("1.1.0");
  });
});

describe("runPlugin: errors", () => {
  it("malformed JSON is code 6 with exit 1", async () => {
    const r = await run(addEnv, "{x");
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ cniVersion: "1.1.0", code: 6 });
    expect(String(r.json?.["msg"])).toMatch(/^error decoding network config/);
  });

  it("a non-object document is code 6", async () => {
    expect((await run(addEnv, "[1]")).json?.["code"]).toBe(6);
  });

  it("missing or unknown cniVersion is code 1", async () => {
    for (const stdin of [{ name: "n" }, conf("0.2.0"), conf("9.9.9")]) {
      const r = await run(addEnv, stdin);
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ cniVersion: "1.1.0", code: 1 });
    }
  });

  it("missing or unsafe network name is code 7", async () => {
    expect((await run(addEnv, { cniVersion: "1.0.0" })).json).toMatchObject({ code: 7, msg: "missing network name" });
    expect((await run(addEnv, conf("1.0.0", { name: "../etc" }))).json).toMatchObject({ code: 7 });
  });

  it("bad CNI_IFNAME or CNI_CONTAINERID is code 4", async () => {
    for (const env of [{ ...addEnv, CNI_IFNAME: "a/b" }, { ...addEnv, CNI_IFNAME: "x".repeat(16) }, { ...addEnv, CNI_CONTAINERID: "-c" }]) {
      const r = await run(env, conf("1.0.0"));
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ code: 4 });
    }
  });

  it("missing or unknown CNI_COMMAND is code 4", async () => {
    expect((await run({}, conf("1.0.0"))).json).toMatchObject({ code: 4 });
    expect((await run({ ...addEnv, CNI_COMMAND: "GET" }, conf("1.0.0"))).json).toMatchObject({ code: 4 });
  });

  it("parseConfig errors pass through with the config's version", async () => {
    const r = await run(addEnv, conf("0.3.1", { bad: true }));
    expect(r.json).toEqual({ cniVersion: "0.3.1", code: 7, msg: "invalid fixture config: bad" });
  });

  it("a plain Error becomes code 100 with its message and no stack on stdout", async () => {
    const { plugin } = fixture({
      add() {
        throw new Error("netlink: EEXIST");
      },
    });
    const r = await run(addEnv, conf("1.0.0"), plugin);
    expect(r.code).toBe(1);
    expect(r.json).toEqual({ cniVersion: "1.0.0", code: 100, msg: "netlink: EEXIST" });
    expect(r.out).not.toMatch(/ at /);
  });

  it("a bad prevResult is code 6", async () => {
    const r = await run(addEnv, conf("1.0.0", { prevResult: { ips: [{ address: "nope" }] } }));
    expect(r.json).toMatchObject({ code: 6 });
  });
});

describe("runPlugin: ADD output per version", () => {
  it("0.3.1 carries ips[].version and drops the interface's mtu; routes keep their attributes", async () => {
    const r = await run(addEnv, conf("0.3.1"));
    expect(r.code).toBe(0);
    expect(r.json).toEqual({
      cniVersion: "0.3.1",
      interfaces: [{ name: "eth0", sandbox: "/ns" }],
      ips: [{ version: "4", address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", priority: 5 }],
      dns: {},
    });
  });

  it("1.0.0 has no ips[].version", async () => {
    const r = await run(addEnv, conf("1.0.0"));
    expect(r.json?.["cniVersion"]).toBe("1.0.0");
    expect(r.json?.["ips"]).toEqual([{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }]);
  });

  it("1.0.0 and 1.1.0 keep interface mtu and route priority", async () => {
    for (const v of ["1.0.0", "1.1.0"]) {
      const r = await run(addEnv, conf(v));
      expect(r.json?.["interfaces"]).toEqual([{ name: "eth0", sandbox: "/ns", mtu: 1450 }]);
      expect(r.json?.["routes"]).toEqual([{ dst: "0.0.0.0/0", priority: 5 }]);
    }
  });

  it("hands the plugin env, conf, raw, stdinVersion and a decoded prevResult", async () => {
    const { plugin, seen } = fixture();
    const prev = { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.9.0.2/24" }] };
    await run({ ...addEnv, CNI_ARGS: "IP=10.9.0.2" }, conf("0.4.0", { prevResult: prev }), plugin);
    const ctx = seen[0]?.ctx;
    expect(ctx?.stdinVersion).toBe("0.4.0");
    expect(ctx?.conf).toEqual({ name: "net1", ready: true });
    expect(ctx?.raw["type"]).toBe("fixture");
    expect(ctx?.env.args.get("IP")).toBe("10.9.0.2");
    expect(ctx?.prevResult).toEqual({ cniVersion: "0.4.0", ips: [{ address: "10.9.0.2/24" }] });
  });
});

describe("runPlugin: CNI_ARGS", () => {
  it("unknown keys fail with code 4", async () => {
    const r = await run({ ...addEnv, CNI_ARGS: "FOO=bar" }, conf("1.0.0"));
    expect(r.json).toMatchObject({ code: 4 });
    expect(String(r.json?.["msg"])).toContain("FOO");
  });

  it("unknown keys pass with IgnoreUnknown, as containerd sends them", async () => {
    const args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u;FOO=bar";
    expect((await run({ ...addEnv, CNI_ARGS: args }, conf("1.0.0"))).code).toBe(0);
  });

  it("the plugin's own keys pass", async () => {
    expect((await run({ ...addEnv, CNI_ARGS: "IP=10.0.0.9" }, conf("1.0.0"))).code).toBe(0);
  });

  it("a plugin that reads none (knownArgs \"any\", like loopback) accepts any, even malformed ones", async () => {
    const { plugin } = fixture({ knownArgs: "any" });
    expect((await run({ ...addEnv, CNI_ARGS: "FOO=bar" }, conf("1.0.0"), plugin)).code).toBe(0);
    expect((await run({ ...addEnv, CNI_ARGS: "junk" }, conf("1.0.0"), plugin)).code).toBe(0);
    // Without knownArgs only the standard keys pass.
    const strict = fixture({ knownArgs: undefined }).plugin;
    expect((await run({ ...addEnv, CNI_ARGS: "FOO=bar" }, conf("1.0.0"), strict)).json).toMatchObject({ code: 4 });
  });
});

describe("runPlugin: DEL and CHECK", () => {
  it("DEL succeeds silently without a netns or prevResult", async () => {
    const { plugin, seen } = fixture();
    const r = await run({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0" }, conf("1.0.0"), plugin);
    expect(r).toMatchObject({ code: 0, out: "" });
    expect(seen.map((s) => s.verb)).toEqual(["DEL"]);
    expect(seen[0]?.ctx?.prevResult).toBeUndefined();
  });

  it("CHECK is refused below 0.4.0 (code 1)", async () => {
    const r = await run({ ...addEnv, CNI_COMMAND: "CHECK" }, conf("0.3.1", { prevResult: { cniVersion: "0.3.1" } }));
    expect(r.json).toEqual({ cniVersion: "0.3.1", code: 1, msg: "config version does not allow CHECK", details: 'cniVersion "0.3.1" < "0.4.0"' });
  });

  it("CHECK calls check silently, with the prevResult if there is one (the plugin decides whether it needs one)", async () => {
    const { plugin, seen } = fixture();
    const r = await run({ ...addEnv, CNI_COMMAND: "CHECK" }, conf("1.0.0", { prevResult: { cniVersion: "1.0.0", ips: [] } }), plugin);
    expect(r).toMatchObject({ code: 0, out: "" });
    expect(seen[0]?.ctx?.prevResult).toEqual({ cniVersion: "1.0.0", ips: [] });
    expect(await run({ ...addEnv, CNI_COMMAND: "CHECK" }, conf("1.0.0"), plugin)).toMatchObject({ code: 0, out: "" });
    expect(seen[1]?.ctx?.prevResult).toBeUndefined();
  });
});

describe("runPlugin: STATUS and GC", () => {
  it("STATUS needs 1.1.0, reports readiness errors, and is silent when ready", async () => {
    expect((await run({ CNI_COMMAND: "STATUS" }, conf("1.0.0"))).json).toMatchObject({ code: 1, msg: "config version does not allow STATUS" });
    expect((await run({ CNI_COMMAND: "STATUS" }, conf("1.1.0", { ready: false }))).json).toEqual({ cniVersion: "1.1.0", code: 50, msg: "not ready" });
    expect(await run({ CNI_COMMAND: "STATUS" }, conf("1.1.0"))).toMatchObject({ code: 0, out: "" });
  });

  it("STATUS and GC succeed for plugins without those handlers", async () => {
    const { plugin } = fixture({ status: undefined, gc: undefined });
    expect((await run({ CNI_COMMAND: "STATUS" }, conf("1.1.0"), plugin)).code).toBe(0);
    expect((await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/valid-attachments": [] }), plugin)).code).toBe(0);
    // Holding nothing, they need no list either (the reference skeleton's rule).
    expect((await run({ CNI_COMMAND: "GC" }, conf("1.1.0"), plugin)).code).toBe(0);
  });

  it("GC passes cni.dev/valid-attachments", async () => {
    const { plugin, seen } = fixture();
    const list = [{ containerID: "c1", ifname: "eth0" }, { containerID: "c2", ifname: "net1" }];
    const r = await run({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, conf("1.1.0", { "cni.dev/valid-attachments": list }), plugin);
    expect(r).toMatchObject({ code: 0, out: "" });
    expect(seen[0]?.attachments).toEqual(list);
  });

  it("GC takes a null list as the empty list Go runtimes mean by it", async () => {
    const { plugin, seen } = fixture();
    expect((await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/valid-attachments": null }), plugin)).code).toBe(0);
    expect(seen).toEqual([{ verb: "GC", ctx: undefined, attachments: [] }]);
  });

  it("GC accepts the older cni.dev/attachments key", async () => {
    const { plugin, seen } = fixture();
    await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/attachments": [{ containerID: "c9", ifname: "eth0" }] }), plugin);
    expect(seen[0]?.attachments).toEqual([{ containerID: "c9", ifname: "eth0" }]);
  });

  it("GC refuses below 1.1.0, without an attachment list, or with malformed entries", async () => {
    expect((await run({ CNI_COMMAND: "GC" }, conf("1.0.0", { "cni.dev/valid-attachments": [] }))).json).toMatchObject({ code: 1 });
    expect((await run({ CNI_COMMAND: "GC" }, conf("1.1.0"))).json).toMatchObject({ code: 7 });
    expect((await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/valid-attachments": [{ containerID: "c1" }] }))).json).toMatchObject({ code: 7 });
  });
});
