// Another process holding a lock file, as a plugin mid-ADD holds weft's attachments lock:
// util-linux flock(1), waiting on its stdin, so closing the pipe releases the lock.
import { spawn } from "node:child_process";
import { once } from "node:events";

export interface HeldLock {
  /** Releases the lock and waits for the holder to exit. */
  release(): Promise<void>;
}

/** Takes flock(LOCK_EX) on `path` (creating it) in a child process; resolves once it is held. */
export async function holdLock(path: string): Promise<HeldLock> {
  // -o: the lock is flock(1)'s own, not inherited by the shell, which ends when stdin closes.
  const child = spawn("flock", ["-o", path, "sh", "-c", "echo held; read _"], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = once(child, "exit");
  await Promise.race([once(child.stdout, "data"), exited.then(() => Promise.reject(new Error(`flock ${path} exited`)))]);
  return {
    release: async () => {
      child.stdin.end();
      await exited;
    },
  };
}
