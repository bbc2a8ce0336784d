// Test bench for shared/firewall: a small host in network namespaces, and a way to run the
// module's functions inside its "host" namespace.
//
//   pod A (10.1.0.2, fd00:1::2) ─┐
//                                 br0 (10.1.0.1, fd00:1::1) ── host ── up0 (192.0.2.1, 2001:db8::1)
//   pod B (10.1.0.3, fd00:1::3) ─┘                                        │
//                                                      outside (192.0.2.2, 2001:db8::2)
//
// `outside` has routes back to the pod subnets, so reachability shows only what FORWARD
// lets through; what masquerade did shows in `sources()`, the addresses pings arrived from.
// Node cannot setns(), so the module runs in a child `node` under `ip netns exec`, bundled
// with esbuild (Node 20 does not run .ts).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { cleanupAll as cleanupNetns, createNetns, deleteNetns, IP, leftovers, ping as pingOnce } from "./netns";

let scratch: string | undefined;
let runner: string | undefined;

/** Runs a shell command (in `ns` if given); returns stdout, throws with stderr on failure. */
export function sh(ns: string | null, cmd: string): string {
  const argv = ns ? [IP, "netns", "exec", ns, "sh", "-c", cmd] : ["sh", "-c", cmd];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}${ns ? ` (in ${ns})` : ""} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** One echo request, a second to answer: most pings here are expected to fail. */
export const ping = (ns: string, dst: string): boolean => pingOnce(ns, dst, 1);

export function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), "weft-fw-"));
  return scratch;
}

const ADDON = fileURLToPath(new URL("../../native/build/Release/weft_native.node", import.meta.url));

/** Bundles shared/firewall once; the runner calls `fw[fn](JSON.parse(arg))`. */
export async function bundleFirewall(): Promise<void> {
  if (!existsSync(ADDON)) throw new Error(`${ADDON} missing: run \`npm run build\` first`);
  const dir = scratchDir();
  await build({
    entryPoints: [fileURLToPath(new URL("../../shared/firewall/index.ts", import.meta.url))],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile: join(dir, "firewall.mjs"),
    logLevel: "error",
    // The native addon (netfilter netlink queries) is dlopened from where node-gyp built it.
    define: { WEFT_NATIVE_PATH: JSON.stringify(ADDON) },
  });
  runner = join(dir, "runner.mjs");
  writeFileSync(
    runner,
    `import * as fw from "./firewall.mjs";
const [fn, arg] = process.argv.slice(2);
try { fw[fn](JSON.parse(arg)); } catch (e) { process.stderr.write(e.message); process.exit(1); }
`,
  );
}

export interface CallResult {
  ok: boolean;
  error: string;
}

type Fn = "addPodRules" | "removePodRules" | "removeStalePodRules";

function callArgs(ns: string, fn: Fn, arg: unknown, path?: string): [string, string[], object] {
  if (!runner) throw new Error("bundleFirewall() first");
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path ?? process.env.PATH };
  delete env.NODE_EXTRA_CA_CERTS; // ~30 ms per node start
  return [IP, ["netns", "exec", ns, process.execPath, runner, fn, JSON.stringify(arg)], { env, encoding: "utf8" }];
}

/** Calls the module in netns `ns`, optionally with a different PATH (to pick a backend). */
export function call(ns: string, fn: Fn, arg: unknown, path?: string): CallResult {
  const [file, args, opts] = callArgs(ns, fn, arg, path);
  const r = spawnSync(file, args, opts);
  return { ok: r.status === 0, error: String(r.stderr) };
}

/** Like call(), but several at once. */
export function callAsync(ns: string, fn: Fn, arg: unknown, path?: string): Promise<CallResult> {
  const [file, args, opts] = callArgs(ns, fn, arg, path);
  return new Promise((done) => {
    const child = spawn(file, args, opts);
    let error = "";
    child.stderr.on("data", (d) => (error += String(d)));
    child.on("close", (code) => done({ ok: code === 0, error }));
  });
}

export interface Bench {
  host: string;
  podA: string;
  podB: string;
  outside: string;
}

export function createBench(): Bench {
  const ns = (role: string): string => {
    const name = createNetns(`fw${role}`);
    // No duplicate address detection for the links made below: their link-local addresses
    // would stay tentative for a second, and un-NATed IPv6 pings miss it (neighbour discovery).
    sh(name, "ip link set lo up && sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    return name;
  };
  const b: Bench = { host: ns("h"), podA: ns("a"), podB: ns("b"), outside: ns("o") };
  sh(
    b.host,
    [
      "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
      "sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1",
      "ip link add br0 type bridge && ip link set br0 up",
      "ip addr add 10.1.0.1/24 dev br0 && ip addr add fd00:1::1/64 dev br0 nodad",
      `ip link add up0 type veth peer name eth0 netns ${b.outside}`,
      "ip addr add 192.0.2.1/24 dev up0 && ip addr add 2001:db8::1/64 dev up0 nodad && ip link set up0 up",
    ].join(" && "),
  );
  sh(
    b.outside,
    [
      "ip addr add 192.0.2.2/24 dev eth0 && ip addr add 2001:db8::2/64 dev eth0 nodad && ip link set eth0 up",
      "ip route add 10.1.0.0/24 via 192.0.2.1 && ip route add fd00:1::/64 via 2001:db8::1",
    ].join(" && "),
  );
  for (const [pod, last, veth] of [[b.podA, 2, "vetha"], [b.podB, 3, "vethb"]] as const) {
    sh(b.host, `ip link add ${veth} type veth peer name eth0 netns ${pod} && ip link set ${veth} master br0 up`);
    sh(
      pod,
      [
        `ip addr add 10.1.0.${last}/24 dev eth0 && ip addr add fd00:1::${last}/64 dev eth0 nodad`,
        "ip link set eth0 up",
        "ip route add default via 10.1.0.1 && ip route add default via fd00:1::1",
      ].join(" && "),
    );
  }
  // Receivers record where echo requests came from, in sets that fill themselves.
  for (const receiver of [b.outside, b.podB]) {
    sh(
      receiver,
      `nft -f - <<'EOF'
table inet seen {
  set from4 { type ipv4_addr; flags dynamic; }
  set from6 { type ipv6_addr; flags dynamic; }
  chain input {
    type filter hook input priority 0;
    icmp type echo-request add @from4 { ip saddr }
    icmpv6 type echo-request add @from6 { ip6 saddr }
  }
}
EOF`,
    );
  }
  return b;
}

/** Source addresses of the pings `ns` received since the last call (then forgets them). */
export function sources(ns: string): string[] {
  const out = sh(ns, "nft -j list set inet seen from4; nft -j list set inet seen from6");
  sh(ns, "nft flush set inet seen from4; nft flush set inet seen from6");
  const found: string[] = [];
  for (const line of out.split("\n").filter(Boolean)) {
    for (const obj of (JSON.parse(line) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables) {
      for (const e of obj.set?.elem ?? []) {
        found.push(typeof e === "string" ? e : (e as { elem: { val: string } }).elem.val);
      }
    }
  }
  return found.sort();
}

export function destroyBench(b: Bench | undefined): void {
  if (b) for (const name of [b.host, b.podA, b.podB, b.outside]) deleteNetns(name);
}

/** Removes every namespace and the scratch directory. */
export function cleanupAll(): void {
  cleanupNetns();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

export { leftovers };
