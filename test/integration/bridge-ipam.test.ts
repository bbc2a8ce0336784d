// Where bridge's IPAM runs: host-local in-process, any other type as a CNI plugin found
// on CNI_PATH; and GC releasing what host-local holds for attachments the runtime dropped.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BIN_DIR, REFERENCE_BIN_DIR } from "../helpers/cni";
import { ipJson, linkNames, nsTry, spoofChecks, weftState } from "../helpers/netns";
import { addPod, bridgeConf, call, delPod, type Node, type Pod, podIP, reservations, type Runner, NET, useNode, vethsIn } from "../helpers/pods";

interface Link {
  ifname: string;
  addr_info: Array<{ local: string; prefixlen: number; family: string; scope: string }>;
}

let node: Node;
useNode((n) => (node = n));

const hostVeths = (): string[] => vethsIn(node.host);

describe("bridge IPAM", () => {
  it("runs host-local in-process: no host-local executable on CNI_PATH is needed for ADD or DEL", () => {
    const empty = join(node.dataDir, "empty-cni-path");
    mkdirSync(empty);
    const conf = bridgeConf(node);
    const pod = addPod(node, conf, { path: [empty] });
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(pod.reply.json!["ips"].map((i: { address: string }) => i.address)).toEqual(["10.77.0.2/24", "fd77::2/64"]);
    // The reservation is host-local's file, naming this container.
    expect(reservations(node).sort()).toEqual(["10.77.0.2", "fd77::2"]);
    expect(readFileSync(join(node.dataDir, NET, "10.77.0.2"), "utf8")).toContain(pod.id);

    const del = delPod(node, pod, conf, "eth0", { path: [empty] });
    expect(del.code, del.stdout).toBe(0);
    expect(reservations(node)).toEqual([]);
  });

  it("takes every range from runtimeConfig.ipRanges when the config names none (the ipRanges capability)", () => {
    // No ranges in ipam (undefined drops out of the JSON): the runtime gives the subnet.
    const conf = bridgeConf(node, { runtimeConfig: { ipRanges: [[{ subnet: "10.78.0.0/24" }]] } }, { ranges: undefined });
    const pod = addPod(node, conf);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(pod.reply.json!["ips"]).toEqual([{ address: "10.78.0.2/24", gateway: "10.78.0.1", interface: 2 }]);
    const eth0 = ipJson<Link[]>(pod.ns, "addr", "show", "dev", "eth0")[0]!;
    expect(eth0.addr_info.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.78.0.2/24"]);
    expect(reservations(node)).toEqual(["10.78.0.2"]);

    const del = delPod(node, pod, conf);
    expect(del.code, del.stdout).toBe(0);
    expect(reservations(node)).toEqual([]);
    expect(hostVeths()).toEqual([]);
  });

  it("executes any other IPAM type from CNI_PATH: the Go static plugin's address is the pod's", () => {
    const conf = {
      ...bridgeConf(node),
      ipam: { type: "static", addresses: [{ address: "10.77.0.50/24", gateway: "10.77.0.1" }] },
    };
    const pod = addPod(node, conf, { path: [REFERENCE_BIN_DIR] });
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(pod.reply.json!["ips"]).toEqual([{ address: "10.77.0.50/24", gateway: "10.77.0.1", interface: 2 }]);
    // Exactly static's address: nothing from host-local, no IPv6 beyond link-local.
    const eth0 = ipJson<Link[]>(pod.ns, "addr", "show", "dev", "eth0")[0]!;
    expect(eth0.addr_info.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.77.0.50/24"]);
    expect(reservations(node)).toEqual([]);

    const veth = pod.reply.json!["interfaces"][1].name as string;
    expect(hostVeths()).toEqual([veth]);
    const del = delPod(node, pod, conf, "eth0", { path: [REFERENCE_BIN_DIR] });
    expect(del.code, del.stdout).toBe(0);
    expect(hostVeths()).toEqual([]);
    expect(nsTry(pod.ns, "ip", "link", "show", "eth0").ok).toBe(false);
  });

  it("an IPAM type missing from CNI_PATH is a CNI error naming it, and ADD leaves no interface behind", () => {
    const conf = { ...bridgeConf(node), ipam: { type: "no-such-ipam" } };
    const pod = addPod(node, conf, { path: [REFERENCE_BIN_DIR] });
    expect(pod.reply.code).not.toBe(0);
    // Code 7 (invalid network config: the config names a plugin that is not there), as
    // libcni's own "failed to find plugin" lookup is reported.
    expect(pod.reply.json).toMatchObject({ code: 7 });
    expect(pod.reply.json!["msg"]).toContain('"no-such-ipam"');
    expect(pod.reply.json!["msg"]).toContain(REFERENCE_BIN_DIR);
    // The veth was made before IPAM ran; the failed ADD removed both ends.
    expect(hostVeths()).toEqual([]);
    expect(linkNames(pod.ns)).toEqual(["lo"]);
  });
});

describe("bridge GC", () => {
  /** Pods a and b added, then GC naming only a valid; a's addresses are all that is left. */
  function gcKeepingFirst(conf: Record<string, unknown>, runner: Runner = {}): Pod {
    const [a, b] = [addPod(node, conf, runner), addPod(node, conf, runner)];
    for (const p of [a, b]) expect(p.reply.code, p.reply.stdout).toBe(0);
    expect(reservations(node)).toHaveLength(4);
    const gc = call(node, {
      plugin: "bridge",
      command: "GC",
      conf: { ...conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: a.id, ifname: "eth0" }] },
      ...runner,
    });
    expect(gc.code, gc.stdout).toBe(0);
    expect(reservations(node).sort()).toEqual([podIP(a, 4), podIP(a, 6)].sort());
    return a;
  }

  it("releases the reservations of attachments not in cni.dev/valid-attachments, keeping the valid ones", () => {
    const a = gcKeepingFirst(bridgeConf(node));
    for (const ip of reservations(node)) expect(readFileSync(join(node.dataDir, NET, ip), "utf8")).toContain(a.id);
  });

  it("also removes the NAT rules and MAC spoof checks of the attachments it drops, keeping the valid ones", () => {
    const a = gcKeepingFirst(bridgeConf(node, { ipMasq: true, macspoofchk: true }));
    const key = `"${NET}/${a.id}/eth0"`;
    // What remains names a alone: its masquerade elements and chains, its spoof-check elements.
    const nat = weftState(node.host);
    expect(nat.length).toBeGreaterThan(0);
    for (const line of nat.filter((l) => !l.startsWith("chain "))) expect(line).toContain(key);
    expect(nat.filter((l) => l.startsWith("chain masq-"))).toHaveLength(2);
    expect(spoofChecks(node.host).map((l) => `"${l.split(" ").at(-1)}"`)).toEqual([key, key]);
  });

  it("on a layer-2 network (no IPAM) removes the dropped attachments' MAC spoof checks, and succeeds", () => {
    const { ipam: _, ...conf } = bridgeConf(node, { macspoofchk: true });
    const [a, b] = [addPod(node, conf), addPod(node, conf)];
    for (const p of [a, b]) expect(p.reply.code, p.reply.stdout).toBe(0);
    const comments = () => spoofChecks(node.host).map((l) => l.split(" ").at(-1));
    expect(comments()).toHaveLength(4);
    const gc = call(node, { plugin: "bridge", command: "GC", conf: { ...conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: a.id, ifname: "eth0" }] } });
    expect(gc.code, gc.stdout).toBe(0);
    expect(comments()).toEqual([`${NET}/${a.id}/eth0`, `${NET}/${a.id}/eth0`]);
  });

  it("runs only an IPAM plugin CNI_PATH holds: a type that is a path is an invalid config, as libcni's FindInPath has it", () => {
    // The first resolves from any CNI_PATH entry to /bin/true, which the check must never run.
    for (const type of ["../../../../../../../../bin/true", "/bin/true"]) {
      const pod = addPod(node, bridgeConf(node, {}, { type }));
      expect(pod.reply.json, type).toMatchObject({ code: 7, msg: `invalid plugin name "${type}"` });
      expect(hostVeths()).toEqual([]);
    }
  });

  it("passes STATUS on to an IPAM plugin it executes, and reports its not-ready", () => {
    const dir = join(node.dataDir, "ipam-bin");
    mkdirSync(dir);
    const state = join(dir, "down");
    // Not ready (50) while the file `down` exists, as a daemon-backed IPAM plugin would be.
    writeFileSync(
      join(dir, "status-ipam"),
      `#!/bin/sh
[ "$CNI_COMMAND" = STATUS ] || exit 9
if [ -e ${state} ]; then echo '{"cniVersion":"1.1.0","code":50,"msg":"daemon down"}'; exit 1; fi
`,
      { mode: 0o755 },
    );
    const conf: Record<string, unknown> = { ...bridgeConf(node, {}, { type: "status-ipam" }), cniVersion: "1.1.0" };
    const status = () => call(node, { plugin: "bridge", command: "STATUS", conf, path: [dir] });
    const ready = status();
    expect(ready.code, ready.stdout).toBe(0);
    writeFileSync(state, "");
    expect(status().json).toMatchObject({ code: 50, msg: "daemon down" });
    const { ipam: _, ...layer2 } = conf;
    expect(call(node, { plugin: "bridge", command: "STATUS", conf: layer2, path: [dir] }).code).toBe(0);
  });

  it("passes GC on to an IPAM plugin it executes, with the valid attachments", () => {
    // An IPAM type of another name, executed from CNI_PATH: weft's own host-local behind a
    // wrapper that tells it its name (host-local's config names its type).
    const dir = join(node.dataDir, "ipam-bin");
    mkdirSync(dir);
    const calls = join(dir, "calls.log");
    writeFileSync(join(dir, "other-ipam"), `#!/bin/sh\necho "$CNI_COMMAND" >> ${calls}\nsed 's/"type":"other-ipam"/"type":"host-local"/' | exec ${join(BIN_DIR, "host-local")}\n`, { mode: 0o755 });
    gcKeepingFirst(bridgeConf(node, {}, { type: "other-ipam" }), { path: [dir] });
    expect(readFileSync(calls, "utf8").split("\n").filter(Boolean)).toEqual(["ADD", "ADD", "GC"]);
  });
});
