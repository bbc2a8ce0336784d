// `weft install`: puts the executable and its plugin links into a CNI bin dir and,
// optionally, a network config into a conf dir. Every file appears atomically (write
// to a temp name, then rename), so the runtime never executes or loads a partial file.
import { copyFileSync, existsSync, linkSync, readFileSync, writeSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { replaceFile, writeFileAtomic } from "../shared/atomic-file";
import { isObject } from "../shared/cni/fold-keys";

export interface InstallOptions {
  binDir: string;
  confDir: string;
  conf?: string;
  pluginNames: string[];
}

const hasType = (v: unknown): boolean => isObject(v) && typeof v["type"] === "string" && v["type"] !== "";

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
  if (ext !== ".conflist") return hasType(doc) ? null : `${name}: no plugin "type" (a list of plugins goes in a .conflist)`;
  if (typeof doc["name"] !== "string") return `${name}: no network "name"`;
  const plugins = doc["plugins"] ?? [];
  if (!Array.isArray(plugins)) return `${name}: "plugins" is not a list`;
  const untyped = plugins.findIndex((p) => !hasType(p));
  if (untyped >= 0) return `${name}: plugins[${untyped}] has no "type"`;
  if (plugins.length === 0 && (doc["loadOnlyInlinedPlugins"] === true || !existsSync(join(confDir, doc["name"])))) {
    return `${name}: no plugins, neither in "plugins" nor in ${join(confDir, doc["name"])}/`;
  }
  return null;
}

export function install(o: InstallOptions): void {
  // Checked first: a conf the runtime could not load must stop the install before it
  // changes anything.
  const conf = o.conf === undefined ? undefined : { name: basename(o.conf), text: readFileSync(o.conf, "utf8") };
  const problem = conf && confProblem(conf.name, conf.text, o.confDir);
  if (problem) throw new Error(problem);
  // replaceFile makes a missing directory.
  const exe = join(o.binDir, "weft");
  replaceFile(exe, (tmp) => copyFileSync(process.execPath, tmp));
  for (const name of o.pluginNames) {
    if (name === "weft") continue;
    replaceFile(join(o.binDir, name), (tmp) => linkSync(exe, tmp));
  }
  writeSync(1, `installed ${exe} and ${o.pluginNames.join(", ")}\n`);
  if (conf) {
    const target = join(o.confDir, conf.name);
    writeSync(1, writeFileAtomic(target, conf.text) ? `installed ${target}\n` : `${target} unchanged\n`);
  }
}
