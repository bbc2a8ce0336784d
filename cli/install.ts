// `weft install`: puts the executable and its plugin links into a CNI bin dir and,
// optionally, a network config into a conf dir. Every file appears atomically (write
// to a temp name, then rename), so the runtime never executes or loads a partial file.
import { copyFileSync, linkSync, readFileSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import { replaceFile, writeFileAtomic } from "../shared/atomic-file";

export interface InstallOptions {
  binDir: string;
  confDir: string;
  conf?: string;
  pluginNames: string[];
}

export function install(o: InstallOptions): void {
  // Checked first: a conf the runtime could not read must stop the install before it
  // changes anything.
  const text = o.conf === undefined ? undefined : readFileSync(o.conf, "utf8");
  if (text !== undefined) {
    try {
      JSON.parse(text);
    } catch (e) {
      throw new Error(`${o.conf} is not valid JSON: ${(e as Error).message}`);
    }
  }
  // replaceFile makes a missing directory.
  const exe = join(o.binDir, "weft");
  replaceFile(exe, (tmp) => copyFileSync(process.execPath, tmp));
  for (const name of o.pluginNames) {
    if (name === "weft") continue;
    replaceFile(join(o.binDir, name), (tmp) => linkSync(exe, tmp));
  }
  writeSync(1, `installed ${exe} and ${o.pluginNames.join(", ")}\n`);
  if (o.conf !== undefined && text !== undefined) {
    const target = join(o.confDir, basename(o.conf));
    writeSync(1, writeFileAtomic(target, text) ? `installed ${target}\n` : `${target} unchanged\n`);
  }
}
