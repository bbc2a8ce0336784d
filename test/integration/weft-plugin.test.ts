// The weft overlay plugin on one node: it waits for the agent's subnet.json, then wires
// pods with the overlay's subnet and MTU, and DEL keeps working when the subnet changes.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ipJson, inNs, nsTry, ping } from "../helpers/netns";
import { addPod, call, useNode, type Node } from "../helpers/pods";

let node: Node;
let stateDir: string;
useNode((n) => {
  node = n;
  stateDir = join(n.dataDir, "state");
  mkdirSync(stateDir);
});

function conf(cniVersion = "1.1.0") {
  return { cniVersion, name: "weft", type: "weft", stateDir, bridge: node.bridge };
}

function writeSubnet(podCIDR: string) {
  writeFileSync(join(stateDir, "subnet.json"), JSON.stringify({ podCIDR, clusterCIDR: "10.244.0.0/16", mtu: 1450 }));
}

describe("weft plugin", () => {
  it("reports not ready (code 50) until the agent wrote subnet.json", () => {
    const status = call(node, { plugin: "weft", command: "STATUS", conf: conf() });
    expect(status.json).toMatchObject({ code: 50 });
    const add = addPod(node, conf(), { plugin: "weft" });
    expect(add.reply.json).toMatchObject({ code: 50 });
    writeSubnet("10.244.1.0/24");
    expect(call(node, { plugin: "weft", command: "STATUS", conf: conf() }).code).toBe(0);
  });

  it("reads /run/weft when the conf names no stateDir", (ctx) => {
    // Only read, never written: the answer names the file it looked for.
    if (existsSync("/run/weft/subnet.json")) ctx.skip("this host runs a weft agent (/run/weft/subnet.json exists)");
    const { stateDir: _, ...noStateDir } = conf();
    const status = call(node, { plugin: "weft", command: "STATUS", conf: noStateDir });
    expect(status.json).toMatchObject({ code: 50 });
    expect(status.json!["msg"]).toContain("/run/weft/subnet.json missing");
  });

  it("wires pods with the node's subnet, the overlay MTU and a route to the cluster", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    const b = addPod(node, conf(), { plugin: "weft" });
    expect(a.reply.code, a.reply.stdout).toBe(0);
    expect(a.reply.json!["ips"][0]).toMatchObject({ address: "10.244.1.2/24", gateway: "10.244.1.1" });
    const eth0 = ipJson<Array<{ mtu: number }>>(a.ns, "link", "show", "eth0")[0]!;
    expect(eth0.mtu).toBe(1450);
    const routes = ipJson<Array<{ dst: string; gateway?: string }>>(a.ns, "-4", "route");
    expect(routes).toContainEqual(expect.objectContaining({ dst: "10.244.0.0/16", gateway: "10.244.1.1" }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: "default", gateway: "10.244.1.1" }));
    expect(ping(a.ns, "10.244.1.3")).toBe(true);
    expect(b.reply.code).toBe(0);
    // The agent masquerades; the plugin adds no NAT of its own.
    expect(inNs(node.host, "nft", "list", "ruleset")).not.toContain("masquerade");
  });

  it("DEL uses the config ADD saved, after subnet.json changed or vanished", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    expect(a.reply.code).toBe(0);
    rmSync(join(stateDir, "subnet.json"));
    const del = call(node, { plugin: "weft", command: "DEL", conf: conf(), containerId: a.id, netns: a.path });
    expect(del.code, del.stdout).toBe(0);
    expect(readdirSync(join(stateDir, "ipam", "weft")).filter((f) => f.startsWith("10."))).toEqual([]);
    expect(readdirSync(join(stateDir, "attachments"))).toEqual([]);
    // DEL for something never added, with no subnet at all, succeeds.
    expect(call(node, { plugin: "weft", command: "DEL", conf: conf(), containerId: "never", netns: a.path }).code).toBe(0);
  });

  it("CHECK passes after ADD; GC releases attachments the runtime no longer knows", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    const b = addPod(node, conf(), { plugin: "weft" });
    const check = call(node, { plugin: "weft", command: "CHECK", conf: { ...conf(), prevResult: a.reply.json }, containerId: a.id, netns: a.path });
    expect(check.code, check.stdout).toBe(0);
    const gc = call(node, {
      plugin: "weft",
      command: "GC",
      conf: { ...conf(), "cni.dev/valid-attachments": [{ containerID: a.id, ifname: "eth0" }] },
    });
    expect(gc.code, gc.stdout).toBe(0);
    const held = readdirSync(join(stateDir, "ipam", "weft")).filter((f) => f.startsWith("10."));
    expect(held).toEqual(["10.244.1.2"]);
    expect(readdirSync(join(stateDir, "attachments"))).toEqual([`weft:${a.id}:eth0.json`]);
    expect(b.reply.code).toBe(0);
    // GC ran DEL for b: its interface is gone too, a's is not.
    expect(nsTry(b.ns, "ip", "link", "show", "eth0").ok).toBe(false);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(true);
  });

  it("an ADD naming its own netns is refused (code 8) without touching the pod's saved config", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    expect(a.reply.code, a.reply.stdout).toBe(0);
    const file = join(stateDir, "attachments", `weft:${a.id}:eth0.json`);
    const before = readFileSync(file, "utf8");
    const again = call(node, { plugin: "weft", command: "ADD", conf: conf(), containerId: a.id, netns: "/proc/self/ns/net" });
    expect(again.json).toMatchObject({ code: 8 });
    expect(readFileSync(file, "utf8")).toBe(before);
    expect(call(node, { plugin: "weft", command: "DEL", conf: conf(), containerId: a.id, netns: a.path }).code).toBe(0);
  });

  it("DEL still reads attachments saved in the older format (the delegated config alone)", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    const file = join(stateDir, "attachments", `weft:${a.id}:eth0.json`);
    const saved = JSON.parse(readFileSync(file, "utf8")) as { netns: string; delegate: Record<string, unknown> };
    expect(saved.netns).toBe(a.path);
    writeFileSync(file, JSON.stringify(saved.delegate));
    writeSubnet("10.244.9.0/24"); // DEL must use the saved config, not this one
    const del = call(node, { plugin: "weft", command: "DEL", conf: conf(), containerId: a.id, netns: a.path });
    expect(del.code, del.stdout).toBe(0);
    expect(readdirSync(join(stateDir, "ipam", "weft")).filter((f) => f.startsWith("10."))).toEqual([]);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(false);
  });
});
