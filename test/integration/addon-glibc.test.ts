// The native addon runs on nodes older than the machine that built it: it asks glibc for no
// symbol newer than Bun itself does (2.17), so it keeps its own table of errno names.
import { execFileSync } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { native } from "../../native/index";

const ADDON = fileURLToPath(new URL("../../native/build/Release/weft_native.node", import.meta.url));

it("needs no glibc symbol version newer than 2.17", () => {
  const needed = [...execFileSync("objdump", ["-T", ADDON], { encoding: "utf8" }).matchAll(/\(?GLIBC_(\d+)\.(\d+)(?:\.\d+)?\)?\s+(\S+)/g)];
  expect(needed.length).toBeGreaterThan(0);
  const tooNew = needed.filter(([, major, minor]) => Number(major) > 2 || Number(minor) > 17).map(([v, , , sym]) => `${sym} ${v}`);
  expect(tooNew).toEqual([]);
});

it("names every errno as Linux does", () => {
  const names = new Map<number, string[]>();
  for (const [name, n] of Object.entries(constants.errno)) names.set(n, [...(names.get(n) ?? []), name]);
  for (const [n, aliases] of names) expect(aliases, `errno ${n}`).toContain(native.errnoName(n));
  expect(native.errnoName(0)).toBe("");
  expect(native.errnoName(4095)).toBe("");
});
