// `weft install`: puts the executable and its plugin links into a CNI bin dir and,
// optionally, a network config into a conf dir. Every file appears atomically (write
// to a temp name, then rename), so the runtime never executes or loads a partial file.
import { closeSync, copyFileSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, writeSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { replaceFile, writeFileAtomic } from "../shared/atomic-file";
import { foldKeys, isObject, NETCONF } from "../shared/cni/fold-keys";

export interface InstallOptions {
  binDir: string;
  confDir: string;
  conf?: string;
  pluginNames: string[];
}

// libcni's NetConf, as its Go decoder reads one plugin's config (its DNS keys too): keys in
// any case, and a value of another type than these fails the whole file.
const PLUGIN_CONF = { properties: { ...NETCONF.properties, dns: { properties: { nameservers: {}, domain: {}, search: {}, options: {} } } } };
const NO_TYPE = 'has no plugin "type"';
const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === "string");

/** Why libcni's decoder would refuse one plugin's config, or null (null values count as absent, as in Go). */
function netConfProblem(v: unknown): string | null {
  if (!isObject(v)) return "is not a JSON object";
  foldKeys(v, PLUGIN_CONF); // in place: what gets written is the file's own text
  for (const k of ["cniVersion", "name", "type"]) if (v[k] != null && typeof v[k] !== "string") return `has a "${k}" that is not a string`;
  if (!v["type"]) return NO_TYPE;
  const { capabilities: caps, ipam, dns } = v;
  if (caps != null && !(isObject(caps) && Object.values(caps).every((b) => typeof b === "boolean"))) return 'has "capabilities" that are not an object of booleans';
  if (ipam != null && !(isObject(ipam) && (ipam["type"] == null || typeof ipam["type"] === "string"))) return 'has an "ipam" that is not an object with a string "type"';
  if (dns != null) {
    const ok = isObject(dns) && ["nameservers", "search", "options"].every((k) => dns[k] == null || isStrings(dns[k])) && (dns["domain"] == null || typeof dns["domain"] === "string");
    if (!ok) return 'has a "dns" that is not {nameservers, search, options: lists of strings; domain: a string}';
  }
  return null;
}

/**
 * Why libcni would not load `text` from `confDir` under `name`, or null. It loads only
 * *.conf, *.json (one plugin's config) and *.conflist (a list), and containerd stops at
 * the first file it cannot load, leaving the node with no network at all. A list's plugins
 * may also be files in `<confDir>/<its name>/` (CNI 1.2; older runtimes want them inline).
 */
export function confProblem(name: string, text: string, confDir: string): string | null {
  const ext = extname(name);
  if (![".conf", ".conflist", ".json"].includes(ext)) return `${name}: runtimes load only .conf, .conflist and .json files`;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `${name} is not valid JSON: ${(e as Error).message}`;
  }
  if (!isObject(doc)) return `${name}: a network config is a JSON object`;
  if (ext !== ".conflist") {
    const problem = netConfProblem(doc);
    if (!problem) return null;
    return problem === NO_TYPE ? `${name} ${NO_TYPE} (a list of plugins goes in a .conflist)` : `${name} ${problem}`;
  }
  // The list itself libcni reads key by key, in exact case: a key that is there must hold
  // its type (null included), its flags a boolean or "true"/"false".
  if (typeof doc["name"] !== "string") return `${name}: no network "name"`;
  if ("cniVersion" in doc && typeof doc["cniVersion"] !== "string") return `${name}: "cniVersion" is not a string`;
  for (const key of ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"]) {
    const v = doc[key];
    if (key in doc && typeof v !== "boolean" && !(typeof v === "string" && /^(true|false)$/i.test(v))) return `${name}: "${key}" is not true or false`;
  }
  if (!("plugins" in doc)) {
    const inlinedOnly = String(doc["loadOnlyInlinedPlugins"]).toLowerCase() === "true";
    const dir = join(confDir, doc["name"]);
    return inlinedOnly || !existsSync(dir) ? `${name}: no plugins, neither in "plugins" nor in ${dir}/` : null;
  }
  const plugins = doc["plugins"];
  if (!Array.isArray(plugins) || plugins.length === 0) return `${name}: "plugins" is not a list of plugins`;
  for (let i = 0; i < plugins.length; i++) {
    const problem = netConfProblem(plugins[i]);
    if (problem) return `${name}: plugins[${i}] ${problem}`;
  }
  return null;
}

/** fsync(2) of a file, or of a directory's entries (renames into it). */
function sync(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function install(o: InstallOptions): void {
  // Checked first: a conf the runtime could not load must stop the install before it
  // changes anything.
  const conf = o.conf === undefined ? undefined : { name: basename(o.conf), text: readFileSync(o.conf, "utf8") };
  const problem = conf && confProblem(conf.name, conf.text, o.confDir);
  if (problem) throw new Error(problem);
  // replaceFile makes a missing directory.
  const exe = join(o.binDir, "weft");
  // On disk before the rename and the renames after: a node that loses power right after
  // an install must not be left with an empty or missing plugin under a valid name.
  replaceFile(exe, (tmp) => {
    copyFileSync(process.execPath, tmp);
    sync(tmp);
  });
  for (const name of o.pluginNames) {
    if (name === "weft") continue;
    replaceFile(join(o.binDir, name), (tmp) => linkSync(exe, tmp));
  }
  sync(o.binDir);
  writeSync(1, `installed ${exe} and ${o.pluginNames.join(", ")}\n`);
  if (conf) {
    const target = join(o.confDir, conf.name);
    // Synced as the executable is: an empty conf file would stop containerd's loading.
    const wrote = writeFileAtomic(target, conf.text, sync);
    if (wrote) sync(o.confDir);
    writeSync(1, wrote ? `installed ${target}\n` : `${target} unchanged\n`);
  }
}
