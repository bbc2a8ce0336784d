// Another process holding a lock file, as a plugin mid-ADD holds weft's attachment lock:
// util-linux flock(1), waiting on its stdin, so closing the pipe releases the lock. And
// the proof that some process waits for one: the kernel lists its blocked flock.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, statSync } from "node:fs";
import { sleep } from "../../lab/exec";

export interface HeldLock {
  /** Releases the lock (once, however often called) and waits for the holder to exit. */
  release(): Promise<void>;
}

/** Takes flock(LOCK_EX) on `path` (creating it) in a child process; resolves once it is held. */
export async function holdLock(path: string): Promise<HeldLock> {
  // -o: the lock is flock(1)'s own, not inherited by the shell, which ends when stdin closes.
  const child = spawn("flock", ["-o", path, "sh", "-c", "echo held; read _"], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = once(child, "exit");
  await Promise.race([once(child.stdout, "data"), exited.then(() => Promise.reject(new Error(`flock ${path} exited`)))]);
  let released: Promise<void> | undefined;
  return {
    release: () => {
      child.stdin.end();
      return (released ??= exited.then(() => undefined));
    },
  };
}

/** Resolves once a process is blocked in flock on the file now at `path` (/proc/locks' "->" lines). */
export async function waitedOn(path: string, ms = 10_000): Promise<void> {
  const waiter = new RegExp(`-> FLOCK .*:${statSync(path).ino} `);
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) {
    if (waiter.test(readFileSync("/proc/locks", "utf8"))) return;
  }
  throw new Error(`no process waited for ${path} within ${ms} ms`);
}
