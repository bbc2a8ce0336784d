// Builds dist/bin/weft: type-check, compile the native addon, bundle with esbuild,
// compile one executable with Bun, and link the plugin names to it.
// Usage: node build/build.mjs [--skip-typecheck]
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, linkSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { precompiledValidators } from "./validators.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const bin = join(dist, "bin");
const nodeBin = join(root, "node_modules", ".bin");
export const PLUGIN_NAMES = ["bridge", "host-local", "loopback"];
// `weft` itself is the executable; as a plugin it is the overlay plugin.

function run(cmd, args, cwd = root) {
  execFileSync(cmd, args, { cwd, stdio: "inherit" });
}

function step(name, fn) {
  const t = Date.now();
  fn();
  console.log(`build: ${name} (${Date.now() - t} ms)`);
}

const addon = join(root, "native", "build", "Release", "weft_native.node");
const addonSource = join(root, "native", "weft_native.c");

if (!process.argv.includes("--skip-typecheck")) {
  step("type-check", () => run(join(nodeBin, "tsc"), ["-p", "."]));
}

if (!existsSync(addon) || statSync(addon).mtimeMs < statSync(addonSource).mtimeMs) {
  step("native addon", () => run(join(nodeBin, "node-gyp"), ["rebuild", "--silent"], join(root, "native")));
}

mkdirSync(bin, { recursive: true });
copyFileSync(addon, join(dist, "weft_native.node"));

await build({
  entryPoints: [join(root, "main.ts")],
  bundle: true,
  platform: "node",
  target: "node20",
  // CommonJS: esbuild then loads node builtins lazily, inside each module's initialiser,
  // instead of hoisting every import to start-up (node:crypto alone costs ~3 ms in Bun).
  format: "cjs",
  outfile: join(dist, "weft.cjs"),
  define: { WEFT_NATIVE_PATH: JSON.stringify("./weft_native.node") },
  external: ["./weft_native.node"],
  legalComments: "none",
  // native/index.ts reads import.meta only on the source (test) path, never in the bundle.
  logOverride: { "empty-import-meta": "silent" },
  logLevel: "warning",
  // Schemas are compiled here, to ajv standalone code: no ajv compiler in the binary.
  plugins: [precompiledValidators()],
});
console.log("build: bundle dist/weft.cjs");

const exe = join(bin, "weft");
step("compile dist/bin/weft", () =>
  run(join(nodeBin, "bun"), ["build", "--compile", "--bytecode", "--minify", "weft.cjs", "--outfile", exe], dist),
);

for (const name of PLUGIN_NAMES) {
  const link = join(bin, name);
  rmSync(link, { force: true });
  linkSync(exe, link);
}
console.log(`build: ${exe} + links ${PLUGIN_NAMES.join(", ")}`);
