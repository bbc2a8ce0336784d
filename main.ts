// weft: one executable, many names. Invoked as `bridge`, `host-local` or `loopback`
// (links to this file) it is that CNI plugin; as `weft` it is the overlay plugin when
// called as a runtime calls it (CNI_COMMAND set, no arguments) and the CLI otherwise.
// Modules load lazily so each plugin pays only for its own code at start-up.
import type { Plugin } from "./shared/cni/skeleton";
import { WEFT_VERSION } from "./shared/weft-version";

const PLUGINS: Record<string, () => Promise<Plugin<never>>> = {
  bridge: () => import("./plugins/bridge/main").then((m) => m.bridge as Plugin<never>),
  "host-local": () => import("./plugins/host-local/main").then((m) => m.hostLocal as Plugin<never>),
  loopback: () => import("./plugins/loopback/main").then((m) => m.loopback as Plugin<never>),
  weft: () => import("./plugins/weft/main").then((m) => m.weft as Plugin<never>),
};

export const PLUGIN_NAMES = Object.keys(PLUGINS);

async function main(): Promise<number> {
  // basename by hand: node:path is one more module to load on every call.
  const name = process.argv0.slice(process.argv0.lastIndexOf("/") + 1);
  const load = PLUGINS[name];
  if (load && (name !== "weft" || (process.env["CNI_COMMAND"] !== undefined && process.argv.length <= 2))) {
    let skeleton: typeof import("./shared/cni/skeleton");
    try {
      skeleton = await import("./shared/cni/skeleton");
    } catch (e) {
      return cannotStart(e);
    }
    const code = await skeleton.runPlugin(load, {}, `CNI plugin ${name} (weft ${WEFT_VERSION})`);
    // The reply is already written (synchronously); _exit skips Bun's VM teardown, which
    // costs more than loading the addon (VERSION) or a whole DEL's work.
    return (await import("./native/index")).native.exitNow(code);
  }
  const { runCli } = await import("./cli/main");
  return runCli(process.argv.slice(2), PLUGIN_NAMES);
}

/**
 * The skeleton did not load (its native addon would not), so every verb, VERSION too,
 * fails: the runtime still gets CNI's error JSON, in the config's version when stdin holds
 * a supported one, written through node:fs.
 */
async function cannotStart(e: unknown): Promise<number> {
  const { fstatSync, readFileSync, writeSync } = await import("node:fs");
  const { cniErrorJson, toCniError } = await import("./shared/cni/errors");
  const { requestedVersion } = await import("./shared/cni/version");
  let stdin = "";
  try {
    // Never wait on a terminal.
    if (!fstatSync(0).isCharacterDevice()) stdin = readFileSync(0, "utf8");
  } catch {
    // No config to take a version from: the newest it is.
  }
  writeSync(1, `${cniErrorJson(toCniError(e), requestedVersion(stdin))}\n`);
  return 1;
}

// Never process.stdout/stderr: Bun's cost ~10 ms to set up. node:fs only on failure.
main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    const [{ writeSync }, { messageOf }] = await Promise.all([import("node:fs"), import("./shared/cni/errors")]);
    writeSync(2, `weft: ${messageOf(e)}\n`);
    process.exit(1);
  },
);
