// Running other programs through the addon's spawn (shared/process.ts): what nft, iptables
// and delegated CNI plugins rely on.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_PATH, findExecutable, mustRun, run, start, which } from "../../shared/process";

const dir = mkdtempSync(join(tmpdir(), "weft-process-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("run", () => {
  it("feeds stdin and returns stdout, trimmed stderr and the exit status", () => {
    const r = run("/bin/sh", ["-c", "tr a-z A-Z; echo ' oops ' >&2; exit 3"], "hello\n");
    expect(r).toEqual({ ok: false, status: 3, stdout: "HELLO\n", stderr: "oops" });
    expect(run("/bin/sh", ["-c", "cat"], "x").ok).toBe(true);
  });

  it("passes exactly the environment given, or ours", () => {
    expect(run("/usr/bin/env", [], "", { ONLY: "this" }).stdout).toBe("ONLY=this\n");
    expect(run("/usr/bin/env", []).stdout).toContain(`PATH=${process.env["PATH"]}`);
  });

  it("searches PATH for a bare name", () => {
    expect(run("sh", ["-c", "echo found"]).stdout).toBe("found\n");
  });

  it("finds tools in the usual system directories when PATH is unset or empty", () => {
    const saved = process.env["PATH"];
    const system = DEFAULT_PATH.split(":");
    try {
      // Two tools: which() remembers each name it looked up.
      delete process.env["PATH"];
      expect(which("nft")).toBe(findExecutable("nft", system));
      process.env["PATH"] = "";
      expect(which("iptables")).toBe(findExecutable("iptables", system));
      expect([which("nft"), which("iptables")]).not.toContain(null);
    } finally {
      if (saved === undefined) delete process.env["PATH"];
      else process.env["PATH"] = saved;
    }
  });

  it("reports a program that cannot start, or was killed, without throwing", () => {
    const missing = run("/nonexistent/weft-tool", []);
    expect(missing).toMatchObject({ ok: false, status: null });
    expect(missing.stderr).toMatch(/ENOENT|No such file/);
    const killed = run("/bin/sh", ["-c", "kill -TERM $$"]);
    expect(killed).toMatchObject({ ok: false, status: null });
    expect(killed.stderr).toContain("killed by signal 15");
  });

  it("reads large outputs on both streams without deadlock", () => {
    const r = run("/bin/sh", ["-c", "head -c 300000 /dev/zero | tr '\\0' a; head -c 200000 /dev/zero | tr '\\0' b >&2"]);
    expect(r.stdout.length).toBe(300000);
    expect(r.stderr.length).toBe(200000);
  });

  it("feeds a large input to a program that writes a large output before it reads", () => {
    const r = run("/bin/sh", ["-c", "head -c 200000 /dev/zero; wc -c"], "y".repeat(300000));
    expect(r.ok).toBe(true);
    expect(r.stdout.length).toBe(200000 + "300000\n".length);
    expect(r.stdout.endsWith("300000\n")).toBe(true);
  });

  it("survives a program that exits without reading its input", () => {
    const r = run("/bin/true", [], "x".repeat(1 << 20));
    expect(r).toMatchObject({ ok: true, status: 0 });
  });
});

describe("start", () => {
  it("returns while the program runs; wait() collects it once", () => {
    const mark = join(dir, "done");
    const running = start("/bin/sh", ["-c", `sleep 0.5; echo finished; touch ${mark}`]);
    expect(existsSync(mark)).toBe(false);
    const r = running.wait();
    expect(existsSync(mark)).toBe(true);
    expect(r).toMatchObject({ ok: true, stdout: "finished\n" });
    expect(running.wait()).toBe(r);
  });
});

describe("mustRun and which", () => {
  it("throws the tool's stderr", () => {
    expect(() => mustRun("doing it", "/bin/sh", ["-c", "echo bad thing >&2; exit 1"])).toThrow("doing it: bad thing");
    expect(mustRun("echo", "/bin/echo", ["ok"])).toBe("ok\n");
  });

  it("finds executables", () => {
    expect(which("sh")).toMatch(/\/sh$/);
    expect(which("weft-no-such-tool")).toBeNull();
    expect(findExecutable("sh", ["/nonexistent", "/bin/"])).toBe("/bin/sh");
  });
});
