// runtimeConfig lookups. containerd 1.6's CRI marshals capability args from Go structs
// without JSON tags ("HostPort", "ContainerPort"), so keys are matched case-insensitively.
import { isObject } from "./fold-keys";

// The value under `key` in a runtimeConfig object; an exact match wins over a
// case-insensitive one. Undefined when absent or when rc is not an object.
export function getRuntimeConfigKey(rc: unknown, key: string): unknown {
  if (!isObject(rc)) return undefined;
  if (Object.hasOwn(rc, key)) return rc[key];
  const lower = key.toLowerCase();
  const found = Object.keys(rc).find((k) => k.toLowerCase() === lower);
  return found === undefined ? undefined : rc[found];
}
