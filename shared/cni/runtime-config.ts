// runtimeConfig lookups. containerd 1.6's CRI marshals capability args from Go structs
// without JSON tags ("HostPort", "ContainerPort"), so keys are matched case-insensitively.

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// The value under `key` in a runtimeConfig object; an exact match wins over a
// case-insensitive one. Undefined when absent or when rc is not an object.
export function getRuntimeConfigKey(rc: unknown, key: string): unknown {
  if (!isObj(rc)) return undefined;
  if (Object.hasOwn(rc, key)) return rc[key];
  const lower = key.toLowerCase();
  const found = Object.keys(rc).find((k) => k.toLowerCase() === lower);
  return found === undefined ? undefined : rc[found];
}

// Renames keys that match a canonical name case-insensitively to that name, one level
// deep; arrays are mapped element-wise. Other keys and non-objects pass through, so a
// schema check afterwards still sees (and can reject) anything unexpected.
export function normalizeKeys(value: unknown, canonical: readonly string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => normalizeKeys(v, canonical));
  if (!isObj(value)) return value;
  const byLower = new Map(canonical.map((c) => [c.toLowerCase(), c]));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const name = byLower.get(k.toLowerCase()) ?? k;
    // An exact canonical key beats a differently-cased duplicate.
    if (name !== k && Object.hasOwn(value, name)) continue;
    out[name] = v;
  }
  return out;
}
