// `weft install`, the README's hand install: the executable and its plugin links in a
// bin dir, a conf file written atomically into a conf dir (and left alone when unchanged),
// bad JSON refused, and an installed executable that needs nothing from the build tree.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { BIN_DIR, ROOT, requireBuild } from "../helpers/cni";

let dir: string;
beforeEach(() => {
  requireBuild();
  dir = mkdtempSync(join(tmpdir(), "weft-install-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function install(...args: string[]) {
  return spawnSync(join(BIN_DIR, "weft"), ["install", "--bin-dir", join(dir, "bin"), "--conf-dir", join(dir, "net.d"), ...args], { encoding: "utf8" });
}

it("puts the executable and its plugin links into the bin dir, and the conf into the conf dir", () => {
  const conf = join(ROOT, "conf-examples", "10-bridge.conflist");
  const r = install("--conf", conf);
  expect(r.status, r.stderr).toBe(0);
  const bin = join(dir, "bin");
  expect(readdirSync(bin).sort()).toEqual(["bridge", "host-local", "loopback", "weft"]);
  const inode = statSync(join(bin, "weft")).ino;
  for (const name of ["bridge", "host-local", "loopback"]) expect(statSync(join(bin, name)).ino).toBe(inode);
  const installed = join(dir, "net.d", "10-bridge.conflist");
  expect(readFileSync(installed, "utf8")).toBe(readFileSync(conf, "utf8"));
  // The installed plugins work under their names.
  const version = spawnSync(join(bin, "loopback"), [], { env: { ...process.env, CNI_COMMAND: "VERSION" }, encoding: "utf8", input: "" });
  expect(JSON.parse(version.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(["1.1.0"]) });
  expect(readdirSync(join(dir, "net.d"))).toEqual(["10-bridge.conflist"]); // no temp file left
  expect(r.stdout).toContain(`installed ${installed}`);
  // Again: the same conf is left as it is (not replaced), and says so.
  const inodeBefore = statSync(installed).ino;
  const again = install("--conf", conf);
  expect(again.status, again.stderr).toBe(0);
  expect(again.stdout).toContain(`${installed} unchanged`);
  expect(statSync(installed).ino).toBe(inodeBefore);
});

it("has the executable and the conf on disk before renaming them into place, and the renames on disk before it ends", (ctx) => {
  // What a power loss right after an install would show can only be read from the calls
  // it makes: fsync of each copy, then its rename, then fsync of its directory.
  const probe = spawnSync("strace", ["-qq", "-e", "trace=none", "true"], { encoding: "utf8" });
  expect(probe.error).toBeUndefined(); // strace is one of setup.sh's packages
  if (probe.status !== 0) ctx.skip(`strace cannot trace here (ptrace blocked?): ${probe.stderr.trim()}`);
  const [bin, confDir] = [join(dir, "bin"), join(dir, "net.d")];
  const conf = join(ROOT, "conf-examples", "10-bridge.conflist");
  const trace = join(dir, "trace");
  const r = spawnSync("strace", ["-f", "-y", "-qq", "-e", "trace=fsync,rename,renameat,renameat2", "-o", trace, join(BIN_DIR, "weft"), "install", "--bin-dir", bin, "--conf-dir", confDir, "--conf", conf], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  const calls = readFileSync(trace, "utf8").split("\n");
  const first = (re: RegExp) => calls.findIndex((l) => re.test(l));
  const last = (re: RegExp) => calls.reduce((found, l, i) => (re.test(l) ? i : found), -1);
  const quote = (path: string) => path.replace(/[.+]/g, "\\$&");
  for (const [d, name] of [[bin, "weft"], [confDir, "10-bridge.conflist"]] as const) {
    const tmp = `${quote(d)}/\\.${quote(name)}\\.tmp-\\d+`;
    const synced = first(new RegExp(`fsync\\(\\d+<${tmp}>\\) = 0`));
    const renamed = first(new RegExp(`rename\\w*\\(.*${tmp}", .*${quote(d)}/${quote(name)}"(, \\d+)?\\) = 0`));
    const lastRename = last(new RegExp(`rename\\w*\\(.*"${quote(d)}/[^/"]+"(, \\d+)?\\) = 0`));
    const dirSynced = last(new RegExp(`fsync\\(\\d+<${quote(d)}>\\) = 0`));
    expect(synced, `${name}:\n${calls.join("\n")}`).toBeGreaterThanOrEqual(0);
    expect(renamed, name).toBeGreaterThan(synced);
    expect(dirSynced, name).toBeGreaterThan(lastRename);
  }
});

it("installs an executable that needs nothing from the build tree", () => {
  const installed = install();
  expect(installed.status, installed.stderr).toBe(0);
  // The build tree hidden (private mounts of this one process): the plugin still loads its
  // embedded native addon, which it unpacks under TMPDIR, and answers.
  const hide = ["dist", "native"].map((d) => `mount -t tmpfs weft-test ${join(ROOT, d)}`).join(" && ");
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", `${hide} && exec "$0"`, join(dir, "bin", "bridge")], {
    env: { PATH: process.env["PATH"], TMPDIR: dir, CNI_COMMAND: "VERSION" },
    encoding: "utf8",
    input: "",
  });
  expect(r.status, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(["1.1.0"]) });
});

it("refuses a conf file a runtime could not load before installing anything", () => {
  const cases: Array<[string, string, string]> = [
    ["99-bad.conflist", "{not json", "99-bad.conflist is not valid JSON"],
    ["99-bad.yaml", JSON.stringify({ name: "n", type: "bridge" }), "runtimes load only .conf, .conflist and .json files"],
    ["99-bad.conflist", "[]", "a network config is a JSON object"],
    ["99-bad.conflist", JSON.stringify({ plugins: [{ type: "bridge" }] }), 'no network "name"'],
    ["99-bad.conflist", JSON.stringify({ name: "n" }), `no plugins, neither in "plugins" nor in ${join(dir, "net.d", "n")}/`],
    ["99-bad.conflist", JSON.stringify({ name: "n", plugins: [] }), '"plugins" is not a list of plugins'],
    ["99-bad.conflist", JSON.stringify({ name: "n", cniVersion: 1, plugins: [{ type: "bridge" }] }), '"cniVersion" is not a string'],
    ["99-bad.conflist", JSON.stringify({ name: "n", cniVersion: null, plugins: [{ type: "bridge" }] }), '"cniVersion" is not a string'],
    ["99-bad.conflist", JSON.stringify({ name: "n", disableCheck: "yes", plugins: [{ type: "bridge" }] }), '"disableCheck" is not true or false'],
    ["99-bad.conflist", JSON.stringify({ name: "n", plugins: [{ type: "bridge" }, { bridge: "cni0" }] }), 'plugins[1] has no plugin "type"'],
    ["99-bad.conf", JSON.stringify({ name: "n", plugins: [{ type: "bridge" }] }), 'no plugin "type" (a list of plugins goes in a .conflist)'],
    // Values of a type libcni's Go decoder refuses, which fails the whole file there.
    ["99-bad.conf", JSON.stringify({ type: "bridge", cniVersion: 1 }), 'has a "cniVersion" that is not a string'],
    ["99-bad.conf", JSON.stringify({ type: "bridge", dns: { nameservers: "10.96.0.10" } }), 'has a "dns" that is not'],
    ["99-bad.conf", JSON.stringify({ type: "bridge", ipam: "host-local" }), 'has an "ipam" that is not an object'],
    ["99-bad.conflist", JSON.stringify({ name: "n", plugins: [{ type: "portmap", capabilities: { portMappings: "true" } }] }), 'plugins[0] has "capabilities" that are not an object of booleans'],
  ];
  for (const [name, text, message] of cases) {
    const bad = join(dir, name);
    writeFileSync(bad, text);
    const r = install("--conf", bad);
    expect(r.status, name + text).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(readdirSync(dir)).toEqual([name]);
    rmSync(bad);
  }
  // One plugin's config in a .conf is fine, with or without a name (libcni names it ""), and
  // with its keys in any case, as Go's decoder reads them.
  const one = join(dir, "05-one.conf");
  writeFileSync(one, JSON.stringify({ CNIVersion: "1.0.0", Type: "loopback" }));
  expect(install("--conf", one).status).toBe(0);
});

it("refuses a misspelt flag before installing anything", () => {
  const r = install("--conf-file", join(ROOT, "conf-examples", "10-bridge.conflist"));
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain("unknown flag --conf-file");
  expect(readdirSync(dir)).toEqual([]);
});
