// `npm run bench`: every benchmark in one run, each printing a Markdown table.
//   plugins   weft's plugins beside the Go reference plugins (ADD/DEL time, RSS)   bench/plugins.ts
//   datapath  iperf3 through the overlay beside the underlay and a bare veth pair  bench/datapath.ts
//   scale     a 50-node namespace cluster: route convergence time, agent RSS       bench/scale.ts
// BENCH_ONLY=plugins|datapath|scale (comma-separated for several) runs only those parts.
// Every namespace, process and file a part makes is removed when the bench ends, also on
// an error, SIGINT or SIGTERM.
import { mkdtempSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCleanups } from "./common";
import { benchDatapath } from "./datapath";
import { benchPlugins } from "./plugins";
import { benchScale } from "./scale";

const parts: Record<string, () => Promise<string>> = {
  plugins: benchPlugins,
  datapath: benchDatapath,
  scale: benchScale,
};

const say = (s: string) => writeSync(1, `${s}\n`);

async function main(): Promise<number> {
  const only = (process.env["BENCH_ONLY"] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((p) => !(p in parts));
  if (unknown.length) {
    writeSync(2, `BENCH_ONLY: unknown part ${unknown.join(", ")} (parts: ${Object.keys(parts).join(", ")})\n`);
    return 2;
  }
  say(`weft bench, ${new Date().toISOString()}`);
  for (const [name, fn] of Object.entries(parts)) {
    if (only.length && !only.includes(name)) continue;
    const t = Date.now();
    say(`\n## ${name}\n`);
    say(await fn());
    runCleanups();
    say(`\n(${name}: ${((Date.now() - t) / 1000).toFixed(0)} s)`);
  }
  return 0;
}

// The executables unpack their addon to $TMPDIR/.bun-<hash>.node: a dir of the bench's
// own, removed last (every part runs executables), so the bench leaves nothing in /tmp.
const tmp = mkdtempSync(join(tmpdir(), "weft-bench-tmp-"));
process.env["TMPDIR"] = tmp;

process.on("exit", () => {
  runCleanups();
  rmSync(tmp, { recursive: true, force: true });
});
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));
// Clean up and exit explicitly: agents a part started keep the event loop alive.
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    writeSync(2, `bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
