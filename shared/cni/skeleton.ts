// The dispatcher every plugin's main calls: env and stdin in, one JSON document and an
// exit code out. Errors never escape as stack traces; libcni only understands the
// error JSON on stdout.
import { native } from "../../native/index";
import { checkKnownArgs } from "./args";
import { type CniEnv, readEnv } from "./env";
import { CniError, cniErrorJson, ErrorCode, toCniError } from "./errors";
import { foldKeys, NETCONF } from "./fold-keys";
import { refuseOwnNetns } from "../netns";
import { convertResult, parsePrevResult, type Result } from "./result";
import { configVersion, LATEST_VERSION, requireVersionFor, SUPPORTED_VERSIONS, versionReply } from "./version";

export interface PluginContext<C> {
  env: CniEnv;
  conf: C;
  raw: Record<string, unknown>; // the parsed stdin
  prevResult?: Result;
  stdinVersion: string;
}

/** The prevResult of a CHECK that compares the kernel with it: code 7 without one. */
export function requirePrevResult(ctx: { prevResult?: Result }): Result {
  if (!ctx.prevResult) throw new CniError(ErrorCode.InvalidConfig, "CHECK requires prevResult");
  return ctx.prevResult;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface Plugin<C> {
  name: string;
  // Schema-validates the whole stdin document (which may also hold prevResult,
  // runtimeConfig, args and the GC attachment list); throws CniError 7.
  parseConfig(raw: Record<string, unknown>, env: CniEnv): C;
  add(ctx: PluginContext<C>): Promise<Result> | Result;
  del(ctx: PluginContext<C>): Promise<void> | void;
  check(ctx: PluginContext<C>): Promise<void> | void;
  // Throws CniError 50/51 when not ready; absent means always ready.
  status?(ctx: { conf: C; raw: Record<string, unknown>; env: CniEnv }): Promise<void> | void;
  // Absent means the plugin holds nothing to collect.
  gc?(ctx: { conf: C; raw: Record<string, unknown>; env: CniEnv; validAttachments: Attachment[] }): Promise<void> | void;
  // CNI_ARGS keys accepted besides the standard ones (absent: none). "any": the plugin reads
  // none, so CNI_ARGS is never even parsed, as the reference loopback never looks at it.
  knownArgs?: string[] | "any";
  // ADD, DEL and CHECK work on interfaces inside CNI_NETNS: one that is the plugin's own
  // netns is refused with code 8 before the verb runs (shared/netns.ts), unless
  // CNI_NETNS_OVERRIDE is 1 or true.
  entersNetns?: boolean;
}

export interface PluginIO {
  env?: NodeJS.ProcessEnv;
  stdin?: string;
  stdout?: (s: string) => void;
}

// Through the native addon rather than node:fs, which VERSION would otherwise load just
// for this. Synchronous, so the whole reply is written before the process exits.
function writeStdout(s: string): void {
  native.writeAll(1, s);
}

function readStdin(command: CniEnv["command"]): string {
  try {
    // null: a terminal. VERSION needs no input; any other verb then gets a decode error
    // instead of waiting for a person to type a config.
    return native.readAll(0) ?? "";
  } catch (e) {
    if (command === "VERSION") return "";
    throw new CniError(ErrorCode.IO, `error reading from stdin: ${(e as Error).message}`);
  }
}

function parseStdin(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.Decode, `error decoding network config: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new CniError(ErrorCode.Decode, "error decoding network config: not a JSON object");
  }
  return v as Record<string, unknown>;
}

// Plugins build paths from the network name (host-local's store), so it must be a
// plain token, as the reference library requires.
function checkNetworkName(raw: Record<string, unknown>): void {
  const name = raw["name"];
  if (name === undefined || name === "") throw new CniError(ErrorCode.InvalidConfig, "missing network name");
  if (typeof name !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/.test(name)) {
    throw new CniError(ErrorCode.InvalidConfig, "invalid characters found in network name", String(name));
  }
}

// The 1.1.0 key, and the one drafts of 1.1.0 used. Missing is an error, not an empty
// list: an empty list tells the plugin to release everything it holds. null is one,
// though: Go runtimes (CRI-O) encode a network's empty list that way.
function parseAttachments(raw: Record<string, unknown>): Attachment[] {
  const list = raw[Object.hasOwn(raw, "cni.dev/valid-attachments") ? "cni.dev/valid-attachments" : "cni.dev/attachments"];
  if (list === undefined) throw new CniError(ErrorCode.InvalidConfig, "GC requires cni.dev/valid-attachments");
  if (list === null) return [];
  if (!Array.isArray(list)) throw new CniError(ErrorCode.InvalidConfig, "cni.dev/valid-attachments must be an array");
  return list.map((a: unknown, i) => {
    const o = a as Record<string, unknown> | null;
    if (typeof o?.["containerID"] !== "string" || typeof o["ifname"] !== "string") {
      throw new CniError(ErrorCode.InvalidConfig, `cni.dev/valid-attachments[${i}] must be {"containerID": string, "ifname": string}`);
    }
    return { containerID: o["containerID"], ifname: o["ifname"] };
  });
}

async function dispatch<C>(plugin: Plugin<C>, env: CniEnv, raw: Record<string, unknown>, version: string, out: (s: string) => void): Promise<void> {
  switch (env.command) {
    case "STATUS": {
      requireVersionFor("STATUS", version, "1.1.0");
      const conf = plugin.parseConfig(raw, env);
      await plugin.status?.({ conf, raw, env });
      return;
    }
    case "GC": {
      requireVersionFor("GC", version, "1.1.0");
      // As the reference skeleton: a plugin holding nothing succeeds, whatever the list.
      if (!plugin.gc) return;
      const validAttachments = parseAttachments(raw);
      const conf = plugin.parseConfig(raw, env);
      await plugin.gc({ conf, raw, env, validAttachments });
      return;
    }
    case "CHECK":
      // A plugin whose CHECK compares the kernel with prevResult requires it itself:
      // loopback and host-local check without one, as the reference's do.
      requireVersionFor("CHECK", version, "0.4.0");
      break;
  }

  if (plugin.knownArgs !== "any") checkKnownArgs(env.args, plugin.knownArgs ?? []);
  const conf = plugin.parseConfig(raw, env);
  const ctx: PluginContext<C> = { env, conf, raw, stdinVersion: version };
  if (raw["prevResult"] != null) ctx.prevResult = parsePrevResult(raw["prevResult"], version);
  if (plugin.entersNetns && !env.netnsOverride) refuseOwnNetns(env.netns);

  switch (env.command) {
    case "ADD": {
      const result = await plugin.add(ctx);
      out(`${JSON.stringify(convertResult(result, version), null, 4)}\n`);
      return;
    }
    case "DEL":
      return plugin.del(ctx);
    case "CHECK":
      return plugin.check(ctx);
  }
}

/**
 * Returns the process exit code; the caller exits with it. The plugin may be given as a
 * loader: VERSION (libcni probes it before every call) then never loads plugin code.
 * Run by hand, without CNI_COMMAND, a plugin prints `about` and the CNI versions it
 * speaks on stderr and succeeds, as the reference plugins do.
 */
export async function runPlugin<C>(pluginOrLoader: Plugin<C> | (() => Promise<Plugin<C>>), io: PluginIO = {}, about?: string): Promise<number> {
  const vars = io.env ?? process.env;
  const out = io.stdout ?? writeStdout;
  if (about !== undefined && !vars["CNI_COMMAND"]) {
    native.writeAll(2, `${about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`);
    return 0;
  }
  // Errors report the config's version once known, else the newest.
  let version = LATEST_VERSION;
  try {
    const env = readEnv(vars);
    const stdin = io.stdin ?? readStdin(env.command);
    if (env.command === "VERSION") {
      out(`${versionReply(stdin)}\n`);
      return 0;
    }
    const raw = parseStdin(stdin);
    foldKeys(raw, NETCONF);
    version = configVersion(raw);
    checkNetworkName(raw);
    const plugin = typeof pluginOrLoader === "function" ? await pluginOrLoader() : pluginOrLoader;
    await dispatch(plugin, env, raw, version, out);
    return 0;
  } catch (e) {
    if (vars["WEFT_DEBUG"] === "1") native.writeAll(2, `weft: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    out(`${cniErrorJson(toCniError(e), version)}\n`);
    return 1;
  }
}
