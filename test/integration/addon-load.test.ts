// The executable's native addon is embedded; Bun unpacks it into $TMPDIR to load it. A node
// whose TMPDIR is missing or mounted noexec (hardened nodes mount /tmp so) must still get
// working plugins, and a plugin that cannot load its addon at all must answer in CNI's
// error JSON and leave nothing behind.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { BIN_DIR } from "../helpers/cni";
import { ipJson, linkNames } from "../helpers/netns";
import { addPod, bridgeConf, delPod, type Node, reservations, type Runner, useNode } from "../helpers/pods";
import { addressOf } from "../../shared/ip";

let node: Node;
useNode((n) => (node = n));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "weft-addon-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A bin dir whose `bridge` is the shell line `run`, which starts the real one as "$BRIDGE". */
function wrapped(run: string): string {
  const bin = join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "bridge"), `#!/bin/sh\nBRIDGE=${join(BIN_DIR, "bridge")}\n${run}\n`);
  chmodSync(join(bin, "bridge"), 0o755);
  return bin;
}

/** An empty directory for TMPDIR: Bun must unpack the addon afresh. */
function emptyTmp(): string {
  const tmp = join(dir, "tmp");
  mkdirSync(tmp);
  return tmp;
}

/** ADD then DEL of one pod, run by `runner`: both succeed, and DEL frees it all. */
function addAndDelete(runner: Runner): void {
  const conf = bridgeConf(node);
  const pod = addPod(node, conf, runner);
  expect(pod.reply.code, pod.reply.stdout + pod.reply.stderr).toBe(0);
  const ip = (pod.reply.json?.["ips"] as Array<{ address: string }>)[0]!.address;
  const addrs = ipJson<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>(pod.ns, "addr", "show", "eth0");
  expect(addrs[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain(ip);
  expect(reservations(node)).toContain(addressOf(ip));
  const deleted = delPod(node, pod, conf, "eth0", runner);
  expect(deleted.code, deleted.stdout + deleted.stderr).toBe(0);
  expect(reservations(node)).toEqual([]);
  expect(linkNames(pod.ns)).toEqual(["lo"]);
}

it("works with a TMPDIR mounted noexec", () => {
  const tmp = emptyTmp();
  // The mount lives in a mount namespace of the plugin call's own.
  const binDir = wrapped(`exec unshare --mount --propagation private sh -c 'mount -t tmpfs -o noexec weft-test "$TMPDIR" && exec "$0"' "$BRIDGE"`);
  addAndDelete({ binDir, env: { TMPDIR: tmp } });
});

it("works with a TMPDIR that does not exist", () => {
  addAndDelete({ env: { TMPDIR: join(dir, "missing") } });
});

it("answers a clean CNI error and leaves nothing behind when the addon cannot be written anywhere", () => {
  // Files of at most 16 blocks (8 KB in dash's 512-byte blocks; the addon has ~34 KB):
  // neither TMPDIR nor a memory file takes it. Bun ignores SIGXFSZ, so the writes fail
  // with EFBIG instead of killing it.
  const pod = addPod(node, bridgeConf(node), { binDir: wrapped('ulimit -f 16; exec "$BRIDGE"'), env: { TMPDIR: emptyTmp() } });
  expect(pod.reply.code).toBe(1);
  expect(pod.reply.json).toMatchObject({ cniVersion: "1.0.0", code: 100, msg: expect.stringMatching(/^cannot load weft's native addon: .*from memory: EFBIG/) });
  expect(linkNames(pod.ns)).toEqual(["lo"]);
  expect(reservations(node)).toEqual([]);
});
