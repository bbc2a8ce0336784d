// The weft overlay plugin on one node: it waits for the agent's subnet.json, then wires
// pods with the overlay's subnet and MTU, and DEL keeps working when the subnet changes.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createNetns, ipJson, inNs, netnsPath, nsTry, ping } from "../helpers/netns";
import { addPod, call, callAsync, useNode, type Node } from "../helpers/pods";
import { BIN_DIR } from "../helpers/cni";
import { holdLock, waitedOn, type HeldLock } from "../helpers/file-lock";
import { cleanupToolPaths, failingAfter, readOnlySysctls } from "../helpers/tool-paths";

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

afterAll(cleanupToolPaths);

const held = () => readdirSync(join(stateDir, "ipam", "weft")).filter((f) => f.startsWith("10."));
/** What is in the attachments directory (none without it). */
const attachmentFiles = () => (existsSync(join(stateDir, "attachments")) ? readdirSync(join(stateDir, "attachments")).sort() : []);
/** An attachment's files: its saved config and its lock. */
const filesOf = (id: string) => [`weft:${id}:eth0.json`, `weft:${id}:eth0.lock`];
/** The runtime's DEL of an attachment (netns "": gone or never known). */
const weftDel = (containerId: string, netns = "") => call(node, { plugin: "weft", command: "DEL", conf: conf(), containerId, netns });
/** The runtime's GC, keeping `valid`. */
const weftGc = (valid: Array<{ containerID: string; ifname: string }> = []) =>
  call(node, { plugin: "weft", command: "GC", conf: { ...conf(), "cni.dev/valid-attachments": valid } });

describe("weft plugin", () => {
  it("reports not ready (code 50) until the agent wrote subnet.json", () => {
    const status = call(node, { plugin: "weft", command: "STATUS", conf: conf() });
    expect(status.json).toMatchObject({ code: 50 });
    const add = addPod(node, conf(), { plugin: "weft" });
    expect(add.reply.json).toMatchObject({ code: 50 });
    expect(attachmentFiles()).toEqual([]); // nothing saved, and no lock file left
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
    const del = weftDel(a.id, a.path);
    expect(del.code, del.stdout).toBe(0);
    expect(held()).toEqual([]);
    expect(attachmentFiles()).toEqual([]);
    // DEL for something never added, with no subnet at all, succeeds, and leaves nothing.
    expect(weftDel("never", a.path).code).toBe(0);
    expect(attachmentFiles()).toEqual([]);
  });

  it("CHECK passes after ADD; GC releases attachments the runtime no longer knows", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    const b = addPod(node, conf(), { plugin: "weft" });
    const check = call(node, { plugin: "weft", command: "CHECK", conf: { ...conf(), prevResult: a.reply.json }, containerId: a.id, netns: a.path });
    expect(check.code, check.stdout).toBe(0);
    const gc = weftGc([{ containerID: a.id, ifname: "eth0" }]);
    expect(gc.code, gc.stdout).toBe(0);
    expect(held()).toEqual(["10.244.1.2"]);
    expect(attachmentFiles()).toEqual(filesOf(a.id));
    expect(b.reply.code).toBe(0);
    // GC ran DEL for b: its interface is gone too, a's is not.
    expect(nsTry(b.ns, "ip", "link", "show", "eth0").ok).toBe(false);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(true);
  });

  it("GC never enters a /proc/<pid>/ns/net the runtime gave: the pid may be another pod's by now", async () => {
    writeSubnet("10.244.1.0/24");
    // A pod whose runtime names its netns by a process in it (as cri-dockerd does).
    const ns = createNetns("pod");
    const holder = spawn("ip", ["netns", "exec", ns, "sleep", "30"], { stdio: "ignore" });
    try {
      // `ip netns exec` execs the command in its own process: the pid is the sleep's.
      const path = `/proc/${holder.pid}/ns/net`;
      const inside = inNs(ns, "readlink", "/proc/self/ns/net").trim();
      await vi.waitFor(() => expect(readlinkSync(path)).toBe(inside), { timeout: 10_000, interval: 50 });
      const add = call(node, { plugin: "weft", command: "ADD", conf: conf(), containerId: "ctr-proc", netns: path });
      expect(add.code, add.stdout).toBe(0);
      // The runtime forgot it: GC frees its address and rules, and leaves the netns alone.
      const gc = weftGc();
      expect(gc.code, gc.stdout).toBe(0);
      expect(held()).toEqual([]);
      expect(nsTry(ns, "ip", "link", "show", "eth0").ok).toBe(true);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("GC also removes the rules and address of an attachment whose saved config is gone", () => {
    writeSubnet("10.244.1.0/24");
    inNs(node.host, "iptables", "-P", "FORWARD", "DROP"); // so the pod gets a forward mark
    const a = addPod(node, conf(), { plugin: "weft" });
    expect(a.reply.code, a.reply.stdout).toBe(0);
    expect(inNs(node.host, "nft", "list", "ruleset")).toContain("10.244.1.2");
    rmSync(join(stateDir, "attachments", `weft:${a.id}:eth0.json`));
    const gc = weftGc();
    expect(gc.code, gc.stdout).toBe(0);
    expect(held()).toEqual([]);
    expect(inNs(node.host, "nft", "list", "ruleset")).not.toContain("10.244.1.2");
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
    expect(weftDel(a.id, a.path).code).toBe(0);
  });

  it("keeps the saved config after an ADD whose rollback failed, for the runtime's DEL", () => {
    writeSubnet("10.244.1.0/24");
    // FORWARD drops, so the pod gets a forward mark of its own (one nft batch); the pod's
    // interface then cannot be configured (its sysctls cannot be written), and removing the
    // mark fails.
    inNs(node.host, "iptables", "-P", "FORWARD", "DROP");
    const path = `${failingAfter("weft-rollback", "nft", 1)}:${process.env["PATH"]}`;
    const binDir = readOnlySysctls("weft-ro", "weft", BIN_DIR);
    const pod = addPod(node, conf(), { plugin: "weft", env: { PATH: path }, binDir });
    expect(pod.reply.code).not.toBe(0);
    expect(pod.reply.json!["msg"]).toContain("(and rolling back failed: ");
    expect(attachmentFiles()).toEqual(filesOf(pod.id));
    expect(inNs(node.host, "nft", "list", "ruleset")).toContain("10.244.1.2");

    const del = weftDel(pod.id, pod.path);
    expect(del.code, del.stdout).toBe(0);
    expect(attachmentFiles()).toEqual([]);
    expect(held()).toEqual([]);
    expect(inNs(node.host, "nft", "list", "ruleset")).not.toContain("10.244.1.2");
  });

  it("moves the bridge's gateway when the node gets another pod CIDR, where the reference bridge would refuse every ADD", () => {
    writeSubnet("10.244.1.0/24");
    expect(addPod(node, conf(), { plugin: "weft" }).reply.code).toBe(0);
    writeSubnet("10.244.5.0/24");
    const moved = addPod(node, conf(), { plugin: "weft" });
    expect(moved.reply.code, moved.reply.stdout).toBe(0);
    expect(moved.reply.json!["ips"][0]).toMatchObject({ address: "10.244.5.2/24", gateway: "10.244.5.1" });
    const v4 = ipJson<Array<{ addr_info: Array<{ family: string; local: string }> }>>(node.host, "addr", "show", "dev", node.bridge)[0]!;
    expect(v4.addr_info.filter((a) => a.family === "inet").map((a) => a.local)).toEqual(["10.244.5.1"]);
  });

  it("an unreadable subnet.json is the agent not ready (50) for STATUS, ADD and GC; DEL without a saved config succeeds", () => {
    writeFileSync(join(stateDir, "subnet.json"), "{");
    expect(weftDel("never").code).toBe(0);
    const status = call(node, { plugin: "weft", command: "STATUS", conf: conf() });
    expect(status.json).toMatchObject({ code: 50, msg: `weft agent not ready: ${join(stateDir, "subnet.json")} unreadable` });
    expect(status.json!["details"]).toContain("not a valid subnet file");
    // An MTU no link can have (0 would have made bridge use 1500), or a pod CIDR that is
    // none, is as unreadable: ADD and GC say not ready too, DEL still succeeds.
    for (const bad of [{ podCIDR: "10.244.1.0/24", mtu: 0 }, { podCIDR: "junk", mtu: 1450 }]) {
      writeFileSync(join(stateDir, "subnet.json"), JSON.stringify({ ...bad, clusterCIDR: "10.244.0.0/16" }));
      expect(call(node, { plugin: "weft", command: "STATUS", conf: conf() }).json).toMatchObject({ code: 50 });
      expect(addPod(node, conf(), { plugin: "weft" }).reply.json).toMatchObject({ code: 50 });
      expect(weftGc().json).toMatchObject({ code: 50 });
      expect(weftDel("never").code).toBe(0);
    }
  });

  describe("the attachment's lock (the agent's orphan pass takes it)", () => {
    const lockOf = (id: string) => join(stateDir, "attachments", `weft:${id}:eth0.lock`);
    /** The plugin, run without blocking the test, for the pod in `ns`. */
    const run = (command: "ADD" | "DEL", ns: string) => callAsync(node, { plugin: "weft", command, conf: conf(), containerId: `ctr-${ns}`, netns: netnsPath(ns), ifname: "eth0" });
    const eth0 = (ns: string) => nsTry(ns, "ip", "link", "show", "eth0").ok;

    it("ADD waits while another process holds it; other pods' ADDs go on", async () => {
      writeSubnet("10.244.1.0/24");
      mkdirSync(join(stateDir, "attachments"));
      const ns = createNetns("pod");
      const lock = await holdLock(lockOf(`ctr-${ns}`));
      const add = run("ADD", ns);
      let reply;
      try {
        expect((await run("ADD", createNetns("pod"))).code).toBe(0);
        await waitedOn(lockOf(`ctr-${ns}`));
        expect(eth0(ns)).toBe(false);
      } finally {
        await lock.release();
        reply = await add;
      }
      expect(reply.code, reply.stdout).toBe(0);
      expect(attachmentFiles()).toContain(`weft:ctr-${ns}:eth0.json`);
      expect(eth0(ns)).toBe(true);
    });

    it("DEL waits while another process holds it", async () => {
      writeSubnet("10.244.1.0/24");
      const pod = addPod(node, conf(), { plugin: "weft" });
      expect(pod.reply.code, pod.reply.stdout).toBe(0);
      const lock = await holdLock(lockOf(pod.id));
      const del = run("DEL", pod.ns);
      let reply;
      try {
        await waitedOn(lockOf(pod.id));
        expect(eth0(pod.ns)).toBe(true);
      } finally {
        await lock.release();
        reply = await del;
      }
      expect(reply.code).toBe(0);
      expect(eth0(pod.ns)).toBe(false);
      expect(attachmentFiles()).toEqual([]);
    });

    it("ADD locks the file at the path now: one its holder removed while ADD waited does not count", async () => {
      writeSubnet("10.244.1.0/24");
      mkdirSync(join(stateDir, "attachments"));
      const ns = createNetns("pod");
      const path = lockOf(`ctr-${ns}`);
      const first = await holdLock(path);
      const add = run("ADD", ns);
      let second: HeldLock | undefined;
      let reply;
      try {
        await waitedOn(path); // on the first file
        // Its holder removes it (as a DEL does) and another process locks a new one there.
        rmSync(path);
        second = await holdLock(path);
        await first.release();
        await waitedOn(path); // on the new one
        expect(eth0(ns)).toBe(false);
      } finally {
        await first.release();
        await second?.release();
        reply = await add;
      }
      expect(reply.code).toBe(0);
      expect(eth0(ns)).toBe(true);
    });
  });

  it("DEL still reads attachments saved in the older format (the delegated config alone)", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    const file = join(stateDir, "attachments", `weft:${a.id}:eth0.json`);
    const saved = JSON.parse(readFileSync(file, "utf8")) as { netns: string; delegate: Record<string, unknown> };
    expect(saved.netns).toBe(a.path);
    writeFileSync(file, JSON.stringify(saved.delegate));
    writeSubnet("10.244.9.0/24"); // DEL must use the saved config, not this one
    const del = weftDel(a.id, a.path);
    expect(del.code, del.stdout).toBe(0);
    expect(held()).toEqual([]);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(false);
  });

  it("takes a saved attachment weft could not have written (not a JSON object) for none: DEL and GC still work", () => {
    writeSubnet("10.244.1.0/24");
    const a = addPod(node, conf(), { plugin: "weft" });
    const stray = join(stateDir, "attachments", "weft:stray:eth0.json");
    for (const text of ["null", "5", "[]", '{"delegate": []}', '{"delegate": {"type": "bridge"}, "netns": 5}']) {
      writeFileSync(stray, text);
      const gc = weftGc([{ containerID: a.id, ifname: "eth0" }]);
      expect(gc.code, `${text}: ${gc.stdout}`).toBe(0);
      const del = weftDel("stray");
      expect(del.code, `${text}: ${del.stdout}`).toBe(0);
    }
    expect(weftDel(a.id, a.path).code).toBe(0);
  });
});
