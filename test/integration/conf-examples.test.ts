// The configs users copy from conf-examples/ work as shipped (only the bridge name and
// the IPAM data dir are pointed at this test's own).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "../helpers/cni";
import { linkNames, ping } from "../helpers/netns";
import { addPod, call, type Node, reservations, useNode } from "../helpers/pods";

let node: Node;
useNode((n) => (node = n));

const dir = join(ROOT, "conf-examples");

for (const file of readdirSync(dir)) {
  it(`${file}: ADD wires a pod that reaches its gateway, DEL releases it`, () => {
    const list = JSON.parse(readFileSync(join(dir, file), "utf8")) as { cniVersion: string; name: string; plugins: Array<Record<string, any>> };
    const plugin = list.plugins[0]!;
    const conf = { cniVersion: list.cniVersion, name: list.name, ...plugin, bridge: node.bridge, ipam: { ...plugin["ipam"], dataDir: node.dataDir } };
    const pod = addPod(node, conf);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    for (const ip of pod.reply.json!["ips"] as Array<{ gateway: string }>) expect(ping(pod.ns, ip.gateway)).toBe(true);
    expect(reservations(node, list.name)).toHaveLength((pod.reply.json!["ips"] as unknown[]).length);
    expect(call(node, { plugin: "bridge", command: "DEL", conf, containerId: pod.id, netns: pod.path }).code).toBe(0);
    expect(reservations(node, list.name)).toEqual([]);
    expect(linkNames(pod.ns)).toEqual(["lo"]);
  });
}
