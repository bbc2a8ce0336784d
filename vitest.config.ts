import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Teardowns run in reverse: the run's TMPDIR is removed before the host is checked.
    globalSetup: ["test/helpers/global-host-check.ts", "test/helpers/global-tmpdir.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests share the kernel; files run one at a time so namespaces and
    // timing stay predictable on a 2-core machine.
    fileParallelism: false,
  },
});
