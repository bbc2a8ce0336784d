// The loopback plugin, compiled, in real network namespaces.
import { expect, it } from "vitest";
import { createNetns, deleteNetns, inNs, ipJson, ping } from "../helpers/netns";
import { addPod, call, type Node, useNode } from "../helpers/pods";

let node: Node;
useNode((n) => (node = n));

const conf = { cniVersion: "1.0.0", name: "lo-test", type: "loopback" };
const loUp = (ns: string): boolean => ipJson<Array<{ flags: string[] }>>(ns, "link", "show", "lo")[0]!.flags.includes("UP");

it("brings lo up on ADD, checks it, takes it down on DEL, and DELs a netns already gone", () => {
  const pod = addPod(node, conf, { plugin: "loopback", ifname: "lo" });
  expect(pod.reply.code, pod.reply.stdout).toBe(0);
  expect(pod.reply.json!["ips"]).toEqual([
    { address: "127.0.0.1/8", interface: 0 },
    { address: "::1/128", interface: 0 },
  ]);
  expect(loUp(pod.ns)).toBe(true);
  expect(ping(pod.ns, "127.0.0.1")).toBe(true);

  const base = { plugin: "loopback", conf, containerId: pod.id, netns: pod.path, ifname: "lo" };
  const check = () => call(node, { ...base, command: "CHECK", conf: { ...conf, prevResult: pod.reply.json } });
  expect(check().code).toBe(0);
  // Without a prevResult too (libcni sends none when its cache is lost), as the reference.
  expect(call(node, { ...base, command: "CHECK" }).code).toBe(0);
  inNs(pod.ns, "ip", "link", "set", "lo", "down");
  expect(check().code).not.toBe(0);

  inNs(pod.ns, "ip", "link", "set", "lo", "up");
  expect(call(node, { ...base, command: "DEL" }).code).toBe(0);
  expect(loUp(pod.ns)).toBe(false);
  deleteNetns(pod.ns);
  expect(call(node, { ...base, command: "DEL" }).code).toBe(0);
});

it("reports the addresses lo has, as the reference: no ::1 where IPv6 is off, an error for any non-loopback one, and any CNI_ARGS", () => {
  const add = (ns: string, args?: string) => addPod(node, conf, { ns, plugin: "loopback", ifname: "lo", args }).reply;
  const noV6 = createNetns("pod");
  inNs(noV6, "sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1");
  // The reference loopback never reads CNI_ARGS: unknown keys and malformed pairs pass.
  const r = add(noV6, "FOO=bar;junk");
  expect(r.code, r.stdout).toBe(0);
  expect(r.json!["ips"]).toEqual([{ address: "127.0.0.1/8", interface: 0 }]);

  const odd = createNetns("pod");
  // Any non-loopback address counts, not only a first one.
  inNs(odd, "ip", "link", "set", "lo", "up");
  inNs(odd, "ip", "addr", "add", "10.9.9.9/32", "dev", "lo");
  const bad = add(odd);
  expect(bad.code).not.toBe(0);
  expect(bad.json!["msg"]).toBe("loopback interface found with non-loopback address 10.9.9.9/32");
});
