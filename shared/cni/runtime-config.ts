// runtimeConfig lookups. containerd 1.6's CRI marshals capability args from Go structs
// without JSON tags ("HostPort", "ContainerPort"), so keys are matched case-insensitively.
import { foldsTo, isObject } from "./fold-keys";

// The value under `key` in a runtimeConfig object, matched as Go's decoder matches a
// field: case-insensitively, the last matching key winning (as foldKeys does for the
// config). Undefined when absent or when rc is not an object.
export function getRuntimeConfigKey(rc: unknown, key: string): unknown {
  if (!isObject(rc)) return undefined;
  let value: unknown;
  for (const k of Object.keys(rc)) if (foldsTo(k, key)) value = rc[k];
  return value;
}
