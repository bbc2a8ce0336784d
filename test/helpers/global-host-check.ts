// Vitest global setup: the whole run must leave the host as it found it. Each test removes
// what it made (and checks its own prefix); this compares everything once more after the
// last test (host-snapshot.ts says what), and fails the run on any difference.
import { tmpdir } from "node:os";
import { hostSnapshot } from "./host-snapshot";

export default function setup(): () => void {
  // Read before global-tmpdir.ts points TMPDIR into the run's own directory.
  const tmp = tmpdir();
  const before = hostSnapshot(tmp);
  return () => {
    const after = hostSnapshot(tmp);
    const changed: string[] = [];
    for (const [what, was] of Object.entries(before)) {
      const now = after[what]!;
      const added = now.filter((x) => !was.includes(x));
      const gone = was.filter((x) => !now.includes(x));
      if (added.length || gone.length) {
        changed.push(`${what}:${added.length ? ` left ${added.join(", ")}` : ""}${gone.length ? ` removed ${gone.join(", ")}` : ""}`);
      }
    }
    if (changed.length) {
      // Vitest reports a teardown's error but still exits 0: fail the run ourselves.
      process.exitCode = 1;
      throw new Error(`the test run changed the host:\n  ${changed.join("\n  ")}`);
    }
  };
}
