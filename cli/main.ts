// `weft <subcommand>`: what the executable does when not run as a CNI plugin.
import { writeSync } from "node:fs";
import { parseFlags } from "./flags";
import { install } from "./install";
import { WEFT_VERSION } from "../shared/weft-version";

const USAGE = `usage: weft <command>

commands:
  agent [flags]  run the overlay agent on this node (weft agent --help)
  install [--bin-dir DIR] [--conf FILE] [--conf-dir DIR]
                 copy this executable and its plugin links into DIR (default
                 /opt/cni/bin); with --conf, also write FILE into the conf dir
                 (default /etc/cni/net.d) atomically
  version        print the version
`;

const INSTALL_FLAGS = new Set(["bin-dir", "conf", "conf-dir"]);

export async function runCli(argv: string[], pluginNames: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "version":
      writeSync(1, `weft ${WEFT_VERSION} (CNI spec 0.3.0-1.1.0; plugins: ${pluginNames.join(", ")})\n`);
      return 0;
    case "agent": {
      // In the executable this import is a separate bundle (agent.cjs, see build/build.mjs),
      // loaded only here: plugin calls never pay for the agent's code.
      const { runAgent } = await import("../agent/main");
      // The executable starts with JIT tier-up made 1000× more reluctant (build/build.mjs):
      // right for a plugin call that runs once and exits, wrong for a daemon.
      (globalThis as { Bun?: { unsafe: { setJITPolicy(scale: number): void } } }).Bun?.unsafe.setJITPolicy(1);
      return runAgent(rest);
    }
    case "install": {
      const f = parseFlags(rest, { values: INSTALL_FLAGS }).values;
      install({
        binDir: f.get("bin-dir") ?? "/opt/cni/bin",
        confDir: f.get("conf-dir") ?? "/etc/cni/net.d",
        ...(f.has("conf") ? { conf: f.get("conf")! } : {}),
        pluginNames,
      });
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
      writeSync(1, USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      writeSync(2, `weft: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}
