// Random bytes from the Web Crypto global: node:crypto costs ~3 ms to load in the
// compiled executable, on every plugin call.

export function randomBytes(n: number): Buffer {
  return globalThis.crypto.getRandomValues(Buffer.alloc(n));
}
