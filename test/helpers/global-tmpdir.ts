// Vitest global setup: one temp dir for the whole run, as TMPDIR for every process the
// tests start. The Bun executable unpacks its embedded addon to $TMPDIR/.bun-<hash>.node
// on first use (a cache it keeps); pointed here, the run leaves nothing in /tmp.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "weft-test-"));
  process.env["TMPDIR"] = dir;
  return () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      // A throwing teardown stops the later ones (the host check) and vitest exits 0.
      process.exitCode = 1;
      throw e;
    }
  };
}
