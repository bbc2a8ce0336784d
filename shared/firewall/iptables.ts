// iptables: the one rule weft needs in iptables' own FORWARD chain, and the fallback backend
// for hosts without the `nft` binary. The fallback uses `iptables`/`ip6tables` as the host's
// PATH (Debian: update-alternatives) selects them, nft or legacy, i.e. the same ones Docker
// and kube-proxy write their rules with.
import { native } from "../../native/index";
import { rollBack } from "../attempt";
import { readText, realPath } from "../fs";
import { NFPROTO, chainPolicy, countRules } from "../netlink/nftables";
import type { NetlinkSocket } from "../netlink/socket";
import { mustRun, run, which } from "../process";
import { type Family, type Pod, MULTICAST, hash } from "./common";
import { POD_MARK } from "./nft";

const bin = (f: Family, tool = ""): string => (f === 4 ? "iptables" : "ip6tables") + tool;
const ipName = (f: Family): string => (f === 4 ? "IPv4" : "IPv6");

// ---------------------------------------------------------------------------------------
// Forward accept for the nftables backend.
//
// The bridge plugin turns on bridge-nf-call-iptables, so pod traffic (bridged or routed)
// crosses the FORWARD hook, where Docker sets iptables' FORWARD policy to DROP. Every base
// chain on a hook must accept a packet, so an `accept` in `inet weft` cannot overrule that
// drop: the accept has to be in iptables' FORWARD chain itself. Per-pod rules there would cost
// an iptables-save + iptables-restore per ADD and DEL (rules are not idempotent, so each
// change needs a read first), so instead `inet weft` marks pod traffic (set lookup, per-pod
// state stays in nft elements) and iptables holds one static rule accepting that mark. The
// rule goes first so that nothing later in the chain drops pod traffic; it stays on DEL (it
// matches nothing once no pod is marked).
//
// All of that only where the filter FORWARD chain drops by policy: elsewhere forwarding needs
// nothing from weft, and ADD and DEL then touch neither nft nor iptables (the table `inet
// weft` is not even created unless ipMasq wants it). The policy is read at every ADD, so a
// pod added after Docker set DROP is marked; pods added before are not, and stay cut off
// until they are added again (as with the reference plugins, which add no forward accept at
// all). A trailing REJECT rule under an ACCEPT policy (RHEL style) is not looked for.
//
// iptables comes in two kinds, and a host may have tables of both (a packet must pass each):
// - iptables-nft (Debian's default; also what Docker uses there): its filter FORWARD chain is
//   the nf_tables chain `ip filter FORWARD` / `ip6 filter FORWARD`. Its policy, and whether
//   our rule is in it (found by its comment), are read over netlink: no process at all.
//   So the rule is checked at every ADD that needs it, and someone flushing iptables loses
//   it only until the next such ADD puts it back.
// - iptables-legacy: its tables are not nf_tables objects; it has one only once something
//   used it in this netns (/proc/net/ip_tables_names lists `filter`). Then the addon reads
//   the table's rules (what `iptables-legacy -S FORWARD` would list, ~2 ms less per ADD),
//   which tell both the policy and whether our rule is there.
// Writing the rule into `table ip filter` from the nft batch would save the insert's process
// too, and iptables-nft 1.8.9 does read such rules back cleanly, but it works only on
// nft-backend hosts, nft itself warns that the table is "managed by iptables-nft, do not
// touch!", and the insert happens once per host (and after a flush), so it is not worth it.
// ---------------------------------------------------------------------------------------
const FORWARD_COMMENT = "weft: accept traffic of pods marked by nft table inet weft";
const MARK = `0x${POD_MARK.toString(16)}`;
const FORWARD_RULE = [
  ...["FORWARD", "-m", "mark", "--mark", `${MARK}/${MARK}`],
  ...["-m", "comment", "--comment", FORWARD_COMMENT, "-j", "ACCEPT"],
];

/**
 * The families, of those given, whose iptables filter FORWARD chain drops by policy; for
 * those it makes sure the static mark-accept rule is there (first, before the pod's nft
 * batch: the rule is not the pod's, so a failure after it leaves nothing of the pod).
 */
export function forwardAccept(nl: NetlinkSocket, families: Iterable<Family>): Set<Family> {
  const drops = new Set<Family>();
  for (const f of families) {
    if (chainPolicy(nl, f === 4 ? NFPROTO.IPV4 : NFPROTO.IPV6, "filter", "FORWARD") === "drop") {
      drops.add(f);
      ensureNftBacked(nl, f);
    }
    if (legacyFilterExists(f) && ensureLegacy(f)) drops.add(f);
  }
  return drops;
}

function ensureNftBacked(nl: NetlinkSocket, f: Family): void {
  const count = countRules(nl, f === 4 ? NFPROTO.IPV4 : NFPROTO.IPV6, "filter", "FORWARD", FORWARD_COMMENT).matching;
  if (count === 1) return;
  // A chain someone made with plain nft and no iptables-nft to write into it: nothing we can
  // add our rule with (as before, when there was no iptables at all).
  const path = tool(f, "nft");
  if (path) fixRuleCount(f, path, count);
}

/**
 * Reads the legacy FORWARD chain (through the addon: no process); returns whether it drops
 * by policy and our rule is there to accept marked traffic, after ensuring it once. A table
 * the addon cannot read fails the call, as `iptables-legacy -S` would have failed too (the
 * same two reads, which need CAP_NET_ADMIN).
 */
function ensureLegacy(f: Family): boolean {
  const chain = native.legacyForward(f, FORWARD_COMMENT);
  if (!chain || !chain[0]) return false;
  const [, count] = chain;
  if (count === 1) return true;
  const path = tool(f, "legacy");
  if (!path) return count > 0; // no tool that could write legacy tables: as it is
  fixRuleCount(f, path, count);
  return true;
}

/**
 * Inserts the rule when missing; replaces extra copies (two first ADDs at once may both
 * insert it) with one, in one atomic restore that deletes the `count` copies seen: run by
 * two calls at once, the second finds fewer and fails as a whole, leaving the first's copy
 * (deleting copies one by one, both would have deleted the last one). That failure is no
 * error: the chain still accepts, which is all that matters.
 */
function fixRuleCount(f: Family, path: string, count: number): void {
  const [chain, ...rule] = FORWARD_RULE;
  if (count === 0) {
    mustRun(`inserting weft's ${ipName(f)} FORWARD accept rule`, path, ["-w", "-I", chain!, "1", ...rule]);
    return;
  }
  const lines = ["*filter"];
  for (let i = 0; i < count; i++) lines.push(quoteLine(["-D", ...FORWARD_RULE]));
  lines.push(quoteLine(["-I", chain!, "1", ...rule]), "COMMIT", "");
  restore(f, lines.join("\n"), `${path.slice(path.lastIndexOf("/") + 1)}-restore`);
}

/** Legacy ip(6)_tables keep a table per netns once it is used; the kernel lists them here. */
function legacyFilterExists(f: Family): boolean {
  try {
    return readText(`/proc/net/ip${f === 4 ? "" : "6"}_tables_names`).split("\n").includes("filter");
  } catch {
    return false; // ip(6)_tables not loaded
  }
}

/**
 * The iptables binary of one kind: `iptables-nft` / `iptables-legacy` by name, else plain
 * `iptables` unless it resolves (Debian's alternatives) to the other kind's multi-binary.
 */
function tool(f: Family, kind: "nft" | "legacy"): string | null {
  const named = which(bin(f, `-${kind}`));
  if (named) return named;
  const plain = which(bin(f));
  if (!plain) return null;
  let target = plain;
  try {
    target = realPath(plain);
  } catch {
    // a dangling link: use the name as it is
  }
  const other = kind === "nft" ? "legacy" : "nft";
  return target.slice(target.lastIndexOf("/") + 1).includes(other) ? null : plain;
}

// ---------------------------------------------------------------------------------------
// Fallback backend (no nft), modelled on the reference plugins, per address family:
//   nat:    POSTROUTING -s POD -j WEFT-<hash>   (comment: the pod)
//           WEFT-<hash>: -d SUBNET -j ACCEPT; -d MULTICAST -j RETURN; -j MASQUERADE
//           (ACCEPT, as the reference: no later POSTROUTING rule may NAT pod-to-pod traffic)
//   filter: FORWARD -j WEFT-FORWARD;  WEFT-FORWARD: -s POD -j ACCEPT; -d POD -j ACCEPT
// <hash> derives from the pod key, so DEL finds the NAT chain without addresses; the rest is
// found by comment. Each change is one iptables-save (to see what exists: iptables rules are
// not idempotent) and one iptables-restore --noflush (each table commits atomically).
// ---------------------------------------------------------------------------------------
/** Every chain weft makes in iptables is named with it. */
const CHAIN_PREFIX = "WEFT-";
const FORWARD_CHAIN = `${CHAIN_PREFIX}FORWARD`;

export function natChain(key: string): string {
  return `${CHAIN_PREFIX}${hash(key, 20).toUpperCase()}`; // iptables chain names: at most 28 characters
}

/** Adds the pod's rules in each family; on any failure removes what it added, and says so if that fails too. */
export function addPod(pod: Pod, masquerade: boolean): void {
  try {
    for (const f of [4, 6] as const) {
      const addrs = pod.addrs.filter((a) => a.family === f);
      if (addrs.length === 0) continue;
      // A concurrent ADD may create WEFT-FORWARD between our read and our write; `-N` then
      // fails the restore and a second try sees the chain.
      let error: Error | undefined;
      for (let tries = 0; tries < 2; tries++) {
        error = restore(f, addScript(pod, addrs, masquerade, save(f)));
        if (!error) break;
      }
      if (error) throw new Error(`adding ${bin(f)} rules for pod ${pod.key}: ${error.message}`);
    }
  } catch (e) {
    rollBack(e, [() => removePod(pod)]);
  }
}

export function removePod(pod: Pod, addrsKnown = false): void {
  const families = addrsKnown ? new Set(pod.addrs.map((a) => a.family)) : ([4, 6] as const);
  for (const f of families) {
    if (!addrsKnown && !which(bin(f, "-save"))) continue;
    const error = removeFrom(f, () => new Set([pod.key]));
    if (error) throw new Error(`removing ${bin(f)} rules for pod ${pod.key}: ${error.message}`);
  }
}

/** GC: removes the rules of every pod whose comment `isStale` picks, in both families. */
export function removeStalePods(isStale: (key: string) => boolean): void {
  for (const f of [4, 6] as const) {
    if (!which(bin(f, "-save"))) continue;
    const error = removeFrom(f, (saved) => {
      const keys = new Set<string>();
      for (const r of saved.rules) {
        const c = commentOf(r.args);
        if (c !== undefined && isStale(c)) keys.add(c); // removeScript then takes only weft's rules
      }
      return keys;
    });
    if (error) throw new Error(`removing ${bin(f)} rules of pods gone: ${error.message}`);
  }
}

/**
 * Deletes everything of the pods `pick` names from what is saved: one iptables-save and
 * one restore, tried twice (a concurrent DEL may remove a rule the first try meant to).
 */
function removeFrom(f: Family, pick: (saved: Saved) => ReadonlySet<string>): Error | undefined {
  let error: Error | undefined;
  for (let tries = 0; tries < 2; tries++) {
    const saved = save(f);
    const script = removeScript(pick(saved), saved);
    error = script ? restore(f, script) : undefined;
    if (!error) break;
  }
  return error;
}

function addScript(pod: Pod, addrs: Pod["addrs"], masquerade: boolean, existing: Saved): string {
  const f = addrs[0]!.family;
  const c = ["-m", "comment", "--comment", pod.key];
  const lines: string[][] = [];
  const ensure = (table: string, rule: string[]): void => {
    if (!existing.has(table, rule)) lines.push(["-A", ...rule]);
  };
  if (masquerade) {
    const chain = natChain(pod.key);
    lines.push(["*nat"], [`:${chain}`, "-", "[0:0]"]); // creates the chain, or empties it if it exists
    for (const subnet of new Set(addrs.map((a) => a.subnet!))) {
      lines.push(["-A", chain, "-d", subnet, ...c, "-j", "ACCEPT"]);
    }
    lines.push(["-A", chain, "-d", MULTICAST[f], ...c, "-j", "RETURN"], ["-A", chain, ...c, "-j", "MASQUERADE"]);
    for (const a of addrs) ensure("nat", ["POSTROUTING", "-s", host(a.ip, f), ...c, "-j", chain]);
    lines.push(["COMMIT"]);
  }
  lines.push(["*filter"]);
  if (!existing.chains.has(`filter ${FORWARD_CHAIN}`)) lines.push(["-N", FORWARD_CHAIN]);
  if (!existing.has("filter", ["FORWARD", "-j", FORWARD_CHAIN])) {
    lines.push(["-I", "FORWARD", "1", "-j", FORWARD_CHAIN]);
  }
  for (const a of addrs) {
    ensure("filter", [FORWARD_CHAIN, "-s", host(a.ip, f), ...c, "-j", "ACCEPT"]);
    ensure("filter", [FORWARD_CHAIN, "-d", host(a.ip, f), ...c, "-j", "ACCEPT"]);
  }
  lines.push(["COMMIT"]);
  return lines.map(quoteLine).join("\n") + "\n";
}

/** The restore script deleting everything of the pods with these keys, or null when nothing is there. */
function removeScript(keys: ReadonlySet<string>, existing: Saved): string | null {
  const chains = new Set(Array.from(keys, natChain));
  const lines: string[] = [];
  for (const table of ["nat", "filter"]) {
    const rules = existing.rules.filter((r) => {
      if (r.table !== table || !isWeftRule(r.args)) return false;
      const c = commentOf(r.args);
      return chains.has(r.args.at(-1)!) || (c !== undefined && keys.has(c));
    });
    const own: string[] = [];
    for (const c of chains) if (existing.chains.has(`${table} ${c}`)) own.push(c);
    if (rules.length === 0 && own.length === 0) continue;
    lines.push(`*${table}`);
    // Jumps first (a referenced chain cannot be deleted); rules inside our chains go with them.
    for (const r of rules) if (!chains.has(r.args[0]!)) lines.push(quoteLine(["-D", ...r.args]));
    for (const c of own) lines.push(`-F ${c}`, `-X ${c}`);
    lines.push("COMMIT");
  }
  return lines.length ? lines.join("\n") + "\n" : null;
}

const host = (ip: string, f: Family): string => `${ip}/${f === 4 ? 32 : 128}`;

/**
 * Whether a rule (its -A args) is one weft writes: in one of its chains, or jumping to one.
 * Others may carry a comment that looks like a pod key (kube-proxy's "default/kubernetes:https"
 * on a network named "default"): they are never read as a pod's, nor deleted.
 */
function isWeftRule(args: string[]): boolean {
  return args[0]!.startsWith(CHAIN_PREFIX) || args.at(-1)!.startsWith(CHAIN_PREFIX);
}

function commentOf(args: string[]): string | undefined {
  const i = args.indexOf("--comment");
  return i < 0 ? undefined : args[i + 1];
}

// --- reading iptables-save output ------------------------------------------------------

interface Saved {
  chains: Set<string>; // "table chain"
  rules: Array<{ table: string; args: string[] }>; // args of "-A …" without the "-A"
  has(table: string, rule: string[]): boolean;
}

function save(f: Family): Saved {
  const out = mustRun(`${bin(f, "-save")} failed`, which(bin(f, "-save")) ?? bin(f, "-save"), []);
  const saved: Saved = {
    chains: new Set(),
    rules: [],
    // iptables-save prints rules canonically: `-s 10.1.0.2/32 -m comment --comment … -j X`,
    // which is how addScript writes them, so comparing argument lists is enough.
    has: (table, rule) => saved.rules.some((r) => r.table === table && r.args.join("\0") === rule.join("\0")),
  };
  let table = "";
  for (const line of out.split("\n")) {
    if (line.startsWith("*")) table = line.slice(1);
    else if (line.startsWith(":")) saved.chains.add(`${table} ${line.slice(1).split(" ")[0]}`);
    else if (line.startsWith("-A ")) saved.rules.push({ table, args: splitArgs(line).slice(1) });
  }
  return saved;
}

/** Applies a restore script with `tool` (by default the family's iptables-restore on PATH). */
function restore(f: Family, script: string, tool = bin(f, "-restore")): Error | undefined {
  const r = run(which(tool) ?? tool, ["-w", "--noflush"], script);
  return r.ok ? undefined : new Error(`${tool} failed: ${r.stderr}\n--- script ---\n${script}`);
}

/** Splits an iptables-save line into arguments (double quotes group, backslash escapes). */
function splitArgs(line: string): string[] {
  const args: string[] = [];
  for (const m of line.matchAll(/"((?:\\.|[^"\\])*)"|(\S+)/g)) {
    args.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!);
  }
  return args;
}

function quoteLine(args: string[]): string {
  return args.map((a) => (/^[\w./:\-[\]*]+$/.test(a) ? a : `"${a.replace(/["\\]/g, "\\$&")}"`)).join(" ");
}
