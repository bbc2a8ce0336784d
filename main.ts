// weft: one executable, many names. Invoked as `bridge`, `host-local` or `loopback`
// (links to this file) it is that CNI plugin; as `weft` it is the CLI. Modules load
// lazily so each plugin pays only for its own code at start-up.
import { basename } from "node:path";
import type { Plugin } from "./shared/cni/skeleton";

const PLUGINS: Record<string, () => Promise<Plugin<never>>> = {
  bridge: () => import("./plugins/bridge/main").then((m) => m.bridge as Plugin<never>),
  "host-local": () => import("./plugins/host-local/main").then((m) => m.hostLocal as Plugin<never>),
  loopback: () => import("./plugins/loopback/main").then((m) => m.loopback as Plugin<never>),
};

export const PLUGIN_NAMES = Object.keys(PLUGINS);

async function main(): Promise<number> {
  const load = PLUGINS[basename(process.argv0)];
  if (load) {
    const [{ runPlugin }, plugin] = await Promise.all([import("./shared/cni/skeleton"), load()]);
    return runPlugin(plugin);
  }
  const { runCli } = await import("./cli/main");
  return runCli(process.argv.slice(2), PLUGIN_NAMES);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`weft: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
