import { describe, expect, it } from "vitest";
import { parseAgentArgs } from "../../../agent/main";

const host = () => "myhost";

describe("parseAgentArgs", () => {
  it("has the documented defaults", () => {
    expect(parseAgentArgs([], {}, host)).toEqual({
      nodes: "kubernetes",
      clusterCIDR: "10.244.0.0/16",
      options: {
        nodeName: "myhost",
        vni: 1,
        port: 4789,
        directRouting: "never",
        fastPath: "auto",
        stateDir: "/run/weft",
        ipamDir: "/run/weft/ipam",
        cniConfDir: "/etc/cni/net.d",
        masquerade: true,
        resyncSeconds: 30,
      },
    });
  });

  it("takes the node name from $NODE_NAME before the hostname, and --node-name before both", () => {
    expect(parseAgentArgs([], { NODE_NAME: "k8s-worker" }, host).options.nodeName).toBe("k8s-worker");
    expect(parseAgentArgs(["--node-name", "n1"], { NODE_NAME: "k8s-worker" }, host).options.nodeName).toBe("n1");
  });

  it("reads every flag, in both --flag value and --flag=value forms", () => {
    const c = parseAgentArgs(
      [
        "--nodes=/etc/weft/nodes.json",
        "--kubeconfig",
        "/k",
        "--cluster-cidr",
        "10.100.3.4/16",
        "--iface=eth1",
        "--vni",
        "42",
        "--port=8472",
        "--mtu",
        "1400",
        "--direct-routing=auto",
        "--fast-path",
        "never",
        "--state-dir",
        "/s",
        "--cni-conf-dir",
        "/c",
        "--masquerade=false",
        "--resync",
        "2",
      ],
      {},
      host,
    );
    expect(c).toEqual({
      nodes: "/etc/weft/nodes.json",
      kubeconfig: "/k",
      clusterCIDR: "10.100.0.0/16",
      options: {
        nodeName: "myhost",
        iface: "eth1",
        vni: 42,
        port: 8472,
        mtu: 1400,
        directRouting: "auto",
        fastPath: "never",
        stateDir: "/s",
        ipamDir: "/s/ipam",
        cniConfDir: "/c",
        masquerade: false,
        resyncSeconds: 2,
      },
    });
    expect(parseAgentArgs(["--state-dir", "/s", "--ipam-dir", "/i"], {}, host).options.ipamDir).toBe("/i");
  });

  it("accepts the boolean forms of --masquerade", () => {
    const m = (...a: string[]) => parseAgentArgs(a, {}, host).options.masquerade;
    expect(m("--masquerade")).toBe(true);
    expect(m("--masquerade", "false")).toBe(false);
    expect(m("--masquerade=true")).toBe(true);
    expect(m("--no-masquerade")).toBe(false);
    expect(m("--masquerade", "--vni", "2")).toBe(true);
  });

  it("refuses bad values with the flag's name", () => {
    const bad = (...a: string[]) => () => parseAgentArgs(a, {}, host);
    expect(bad("--vni", "x")).toThrow(/--vni/);
    expect(bad("--vni", "16777216")).toThrow(/--vni/);
    expect(bad("--port", "0")).toThrow(/--port/);
    expect(bad("--direct-routing", "always")).toThrow(/--direct-routing/);
    expect(bad("--fast-path", "on")).toThrow(/--fast-path: expected auto or never/);
    expect(bad("--cluster-cidr", "fd00::/64")).toThrow(/--cluster-cidr/);
    expect(bad("--masquerade=maybe")).toThrow(/--masquerade/);
    expect(bad("--bogus", "1")).toThrow(/unknown flag --bogus/);
    expect(bad("--resync")).toThrow(/needs a value/);
    expect(bad("--resync", "--vni", "2")).toThrow(/--resync needs a value/);
    expect(bad("--state-dir=")).toThrow(/--state-dir needs a value/);
    expect(bad("--cni-conf-dir", "")).toThrow(/--cni-conf-dir needs a value/);
    expect(bad("stray")).toThrow(/unexpected argument/);
  });
});
