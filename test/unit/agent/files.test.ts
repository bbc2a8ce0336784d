// The agent's own files: subnet.json, the conflist, and atomic change-only writes.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { conflistContent, conflistPlugins, publishCniFiles, subnetFileContent } from "../../../agent/cni-files";
import { writeFileAtomic } from "../../../shared/atomic-file";
import { overlayBatch, overlayChains, removeBatch, rulesTag } from "../../../agent/overlay-rules";
import { parseWeftConf, readSubnet } from "../../../plugins/weft/config";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "weft-agent-files-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("conflist", () => {
  it("is the weft network with the state and IPAM dirs the agent was given", () => {
    expect(JSON.parse(conflistContent({ stateDir: "/run/weft", ipamDir: "/run/weft/ipam" }))).toEqual({
      cniVersion: "1.0.0",
      cniVersions: ["1.0.0", "1.1.0"],
      name: "weft",
      plugins: [{ type: "weft", stateDir: "/run/weft", dataDir: "/run/weft/ipam" }],
    });
  });

  it("builds its plugin chain in one place", () => {
    expect(conflistPlugins({ stateDir: "/s", ipamDir: "/i" })).toEqual([{ type: "weft", stateDir: "/s", dataDir: "/i" }]);
  });

  it("is what the weft plugin reads: its stateDir/dataDir keys and subnet.json shape", () => {
    const conf = JSON.parse(conflistContent({ stateDir: dir, ipamDir: join(dir, "ipam") }));
    const weft = parseWeftConf({ cniVersion: conf.cniVersion, name: conf.name, ...conf.plugins[0] });
    expect([weft.stateDir, weft.dataDir]).toEqual([dir, join(dir, "ipam")]);
    publishCniFiles({ stateDir: dir, ipamDir: join(dir, "ipam"), cniConfDir: join(dir, "net.d") }, { podCIDR: "10.244.1.0/24", clusterCIDR: "10.244.0.0/16", mtu: 1450 });
    expect(readSubnet(weft)).toEqual({ podCIDR: "10.244.1.0/24", clusterCIDR: "10.244.0.0/16", mtu: 1450 });
  });
});

describe("subnet.json", () => {
  it("holds the pod CIDR, cluster CIDR and MTU", () => {
    expect(JSON.parse(subnetFileContent({ podCIDR: "10.244.3.0/24", clusterCIDR: "10.244.0.0/16", mtu: 1450 }))).toEqual({
      podCIDR: "10.244.3.0/24",
      clusterCIDR: "10.244.0.0/16",
      mtu: 1450,
    });
  });
});

describe("publishCniFiles", () => {
  const o = () => ({ stateDir: join(dir, "state"), ipamDir: join(dir, "state", "ipam"), cniConfDir: join(dir, "net.d") });
  const subnet = { podCIDR: "10.244.1.0/24", clusterCIDR: "10.244.0.0/16", mtu: 1450 };

  it("writes subnet.json then the conflist, creating the directories", () => {
    expect(publishCniFiles(o(), subnet)).toEqual([
      `write ${join(dir, "state", "subnet.json")} (podCIDR 10.244.1.0/24, clusterCIDR 10.244.0.0/16, mtu 1450)`,
      `write ${join(dir, "net.d", "10-weft.conflist")}`,
    ]);
    expect(JSON.parse(readFileSync(join(dir, "state", "subnet.json"), "utf8"))).toEqual(subnet);
    expect(readdirSync(join(dir, "net.d"))).toEqual(["10-weft.conflist"]); // no temp file left
  });

  it("rewrites nothing when nothing changed, and only the changed file otherwise", () => {
    publishCniFiles(o(), subnet);
    const before = statSync(join(dir, "net.d", "10-weft.conflist")).ino;
    expect(publishCniFiles(o(), subnet)).toEqual([]);
    expect(publishCniFiles(o(), { ...subnet, mtu: 1400 })).toEqual([
      `write ${join(dir, "state", "subnet.json")} (podCIDR 10.244.1.0/24, clusterCIDR 10.244.0.0/16, mtu 1400)`,
    ]);
    expect(statSync(join(dir, "net.d", "10-weft.conflist")).ino).toBe(before);
  });
});

describe("writeFileAtomic", () => {
  it("replaces the file by rename (a new inode) and reports whether it wrote", () => {
    const p = join(dir, "f");
    expect(writeFileAtomic(p, "a")).toBe(true);
    const ino = statSync(p).ino;
    expect(writeFileAtomic(p, "a")).toBe(false);
    expect(writeFileAtomic(p, "b")).toBe(true);
    expect(readFileSync(p, "utf8")).toBe("b");
    expect(statSync(p).ino).not.toBe(ino);
  });
});

describe("overlay packet-filter batch", () => {
  const spec = { podCIDR: "10.244.1.0/24", clusterCIDR: "10.244.0.0/16", masquerade: true, forwardMarks: false };

  it("returns pod-to-pod untouched and masquerades the rest, except multicast; and the outside to other nodes' pods", () => {
    expect(overlayChains(spec)).toEqual([
      expect.objectContaining({
        name: "postrouting",
        rules: [
          "ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return",
          "ip saddr 10.244.1.0/24 ip daddr != 224.0.0.0/4 masquerade fully-random",
          "ip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return",
          "ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random",
        ],
      }),
    ]);
  });

  it("marks the cluster's traffic for FORWARD only while that chain drops; nothing wanted, no chain", () => {
    const marks = overlayChains({ ...spec, masquerade: false, forwardMarks: true });
    expect(marks).toEqual([
      expect.objectContaining({
        name: "forward",
        declaration: "type filter hook forward priority filter - 1; policy accept;",
        rules: ["ip saddr 10.244.0.0/16 meta mark set meta mark | 0x1000", "ip daddr 10.244.0.0/16 meta mark set meta mark | 0x1000"],
      }),
    ]);
    expect(overlayChains({ ...spec, masquerade: false })).toEqual([]);
  });

  it("replaces its own table in one batch, each rule tagged with the set's hash", () => {
    const chains = overlayChains(spec);
    const tag = rulesTag(chains);
    expect(tag).toMatch(/^weft-overlay [0-9a-f]{8}$/);
    expect(overlayBatch(chains).split("\n")).toEqual([
      "add table ip weft-overlay",
      "delete table ip weft-overlay",
      "add table ip weft-overlay",
      "add chain ip weft-overlay postrouting { type nat hook postrouting priority srcnat; policy accept; }",
      `add rule ip weft-overlay postrouting ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return comment "${tag}"`,
      `add rule ip weft-overlay postrouting ip saddr 10.244.1.0/24 ip daddr != 224.0.0.0/4 masquerade fully-random comment "${tag}"`,
      `add rule ip weft-overlay postrouting ip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return comment "${tag}"`,
      `add rule ip weft-overlay postrouting ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random comment "${tag}"`,
      "",
    ]);
    expect(rulesTag(overlayChains({ ...spec, podCIDR: "10.244.2.0/24" }))).not.toBe(tag);
    expect(rulesTag(overlayChains({ ...spec, forwardMarks: true }))).not.toBe(tag);
  });

  it("names the node's pod CIDR in each forward-mark rule's comment, after the tag", () => {
    const chains = overlayChains({ ...spec, masquerade: false, forwardMarks: true });
    const tag = rulesTag(chains);
    expect(overlayBatch(chains).split("\n").filter((l) => l.startsWith("add rule"))).toEqual([
      `add rule ip weft-overlay forward ip saddr 10.244.0.0/16 meta mark set meta mark | 0x1000 comment "${tag} marks 10.244.1.0/24"`,
      `add rule ip weft-overlay forward ip daddr 10.244.0.0/16 meta mark set meta mark | 0x1000 comment "${tag} marks 10.244.1.0/24"`,
    ]);
  });

  it("removes the table idempotently", () => {
    expect(removeBatch()).toBe("add table ip weft-overlay\ndelete table ip weft-overlay\n");
  });
});
