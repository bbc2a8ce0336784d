// Builds dist/bin/weft: type-check, compile the native addon, bundle with esbuild,
// compile one executable with Bun, and let it install itself and its plugin links.
// Usage: node build/build.mjs [--skip-typecheck] [--if-needed]
//   --if-needed: do nothing when dist/bin/weft exists and no input is newer than the last
//   complete build (dist/.built-from holds the newest input's time, written once dist/bin
//   is installed)
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { precompiledValidators } from "./validators.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const bin = join(dist, "bin");
const nodeBin = join(root, "node_modules", ".bin");

function run(cmd, args, cwd = root, env = process.env) {
  execFileSync(cmd, args, { cwd, stdio: "inherit", env });
}

function step(name, fn) {
  const t = Date.now();
  fn();
  console.log(`build: ${name} (${Date.now() - t} ms)`);
}

const addon = join(root, "native", "build", "Release", "weft_native.node");
const addonSources = ["native/weft_native.c", "native/binding.gyp"];

/** The newest modification time among `paths` (relative to the root; directories walked). */
function newest(paths) {
  const of = (path) => {
    const st = statSync(path);
    if (!st.isDirectory()) return st.mtimeMs;
    let t = 0;
    for (const name of readdirSync(path)) t = Math.max(t, of(join(path, name)));
    return t;
  };
  return Math.max(...paths.map((p) => of(join(root, p))));
}

/** The newest modification time among the files the executable is built from. */
function newestSource() {
  return newest(["main.ts", "cli", "agent", "plugins", "ipam", "shared", "native/index.ts", ...addonSources, "build", "package-lock.json", "tsconfig.json"]);
}

// Read before building, so an input edited meanwhile is newer than the stamp; the stamp is
// removed until the install into dist/bin has finished.
const stamp = join(dist, ".built-from");
const inputsTime = newestSource();
// The addon as node-gyp built it too: the tests and the lab load it from there.
if (process.argv.includes("--if-needed") && existsSync(join(bin, "weft")) && existsSync(addon) && existsSync(stamp) && Number(readFileSync(stamp, "utf8")) >= inputsTime) {
  console.log("build: dist/bin/weft is up to date");
  process.exit(0);
}
rmSync(stamp, { force: true });

if (!process.argv.includes("--skip-typecheck")) {
  step("type-check", () => run(join(nodeBin, "tsc"), ["-p", "."]));
}

if (!existsSync(addon) || statSync(addon).mtimeMs < newest(addonSources)) {
  // Build against the headers of the Node that runs us (no download: offline machines).
  const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
  step("native addon", () => run(join(nodeBin, "node-gyp"), ["rebuild", "--silent", `--nodedir=${nodedir}`], join(root, "native")));
}

mkdirSync(dist, { recursive: true });
copyFileSync(addon, join(dist, "weft_native.node"));

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  // CommonJS: esbuild then loads node builtins lazily, inside each module's initialiser,
  // instead of hoisting every import to start-up (node:crypto alone costs ~3 ms in Bun).
  format: "cjs",
  // Where native/index.ts dlopens the addon: the asset the compile step embeds (below).
  define: { WEFT_NATIVE_PATH: JSON.stringify("/$bunfs/root/weft_native.node") },
  legalComments: "none",
  // native/index.ts reads import.meta only on the source (test) path, never in the bundle.
  logOverride: { "empty-import-meta": "silent" },
  logLevel: "warning",
};

// Code that only `weft agent` runs lives in bundles of its own, embedded beside weft.cjs in
// the executable: agent.cjs (the reconciler) and kube.cjs (the Kubernetes node source and
// its client, ~5 MB of JS). In the main bundle, even never initialised, the agent would
// cost every plugin call ~4 ms of start-up; and an agent reading a nodes file would carry
// ~10 MB more memory for a client it never uses. A bundle reaches the next through a
// require whose path is computed at run time (so neither esbuild nor Bun pulls it in): the
// directory of the main module, `/$bunfs/root` inside the executable.
function apart(specifier, bundle) {
  const filter = new RegExp(`^${specifier.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`);
  return {
    name: `apart:${bundle}`,
    setup(b) {
      b.onResolve({ filter }, () => ({ path: bundle, namespace: "apart" }));
      b.onLoad({ filter: /.*/, namespace: "apart" }, (args) => ({
        contents: `const { dirname, join } = require("node:path");
module.exports = require(join(dirname(require.main.filename), ${JSON.stringify(args.path)}));`,
        loader: "js",
      }));
    },
  };
}

const bundles = [
  // Schemas are compiled here, to ajv standalone code: no ajv compiler in the binary.
  { entry: "main.ts", out: "weft.cjs", plugins: [precompiledValidators(), apart("../agent/main", "agent.cjs")] },
  // The agent runs the weft plugin's GC code, and with it the bridge's config validation.
  { entry: "agent/main.ts", out: "agent.cjs", plugins: [precompiledValidators(), apart("./kube-source", "kube.cjs")] },
  { entry: "agent/kube-source.ts", out: "kube.cjs", plugins: [] },
];
for (const { entry, out, plugins } of bundles) {
  await build({ ...common, entryPoints: [join(root, entry)], outfile: join(dist, out), plugins });
  console.log(`build: bundle dist/${out}`);
}

const compiled = join(dist, "weft");
const compileFlags = [
  "--compile",
  "--bytecode",
  "--minify",
  // A plugin must not read .env or bunfig.toml from whatever directory the runtime runs it in.
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  // A plugin call runs each function a handful of times and exits: JIT-compiling any of it
  // costs more than it saves, and the JIT's memory is most of the peak RSS above Bun's own
  // (measured: -4 MB per ADD). `weft agent` restores the normal policy (cli/main.ts).
  "--compile-jit-policy=1000",
  // The addon, at /$bunfs/root/weft_native.node (WEFT_NATIVE_PATH above).
  "--asset",
  "weft_native.node",
];
step("compile dist/weft", () => run(join(nodeBin, "bun"), ["build", ...compileFlags, ...bundles.map((x) => x.out), "--outfile", compiled], dist));
// The executable puts itself and its plugin links into dist/bin, as on a node (the plugin
// names are listed once, in main.ts), with a TMPDIR of its own: it unpacks its addon
// there, and the build leaves nothing in /tmp.
const tmp = mkdtempSync(join(dist, "tmp-"));
try {
  step("install into dist/bin", () => run(compiled, ["install", "--bin-dir", bin], root, { ...process.env, TMPDIR: tmp }));
  writeFileSync(stamp, String(inputsTime));
} finally {
  rmSync(tmp, { recursive: true, force: true });
  rmSync(compiled, { force: true });
}
