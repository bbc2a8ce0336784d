// Go's JSON decoding, which the reference plugins and libcni use, matches an object key to
// a field case-insensitively when no field has exactly that name: `"IsGateway": true` sets
// isGateway there. A config written for them must mean the same here, so before a config
// is validated its keys are renamed, in place, to the schema's spelling.

type Obj = Record<string, unknown>;

/**
 * The keys every network config may have (libcni's NetConf, whose IPAM has its type), for
 * foldKeys: as in Go, a "CNIVersion" is a cniVersion and an ipam "Type" its type. Each
 * plugin's own keys are folded by its validator.
 */
export const NETCONF = {
  properties: { cniVersion: {}, name: {}, type: {}, capabilities: {}, ipam: { properties: { type: {} } }, dns: {}, args: {}, runtimeConfig: {}, prevResult: {} },
};

/** A JSON object: not null, not an array. */
export const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Whether Go's decoder would match object key `key` to a field named `name`. */
export function foldsTo(key: string, name: string): boolean {
  // Lengths first: most keys a schema does not name (cniVersion, name, type) end here.
  return key.length === name.length && key.toLowerCase() === name.toLowerCase();
}

/** The schema's property name `key` matches only case-insensitively, if any. */
function folded(key: string, names: string[]): string | undefined {
  for (const name of names) if (foldsTo(key, name)) return name;
  return undefined;
}

/**
 * Renames, in `data` and what it nests, each key that matches one of the schema's property
 * names only case-insensitively. Where several keys name one property, the last in the
 * document wins, as in Go. Keys the schema does not name are left as they are.
 */
export function foldKeys(data: unknown, schema: unknown): void {
  if (!isObject(schema)) return;
  if (Array.isArray(data)) {
    for (const item of data) foldKeys(item, schema["items"]);
    return;
  }
  const props = schema["properties"];
  if (!isObject(data) || !isObject(props)) return;
  const names = Object.keys(props);
  let chosen: Obj | undefined; // property -> the value of the last key naming it
  for (const key of Object.keys(data)) {
    if (Object.hasOwn(props, key)) {
      if (chosen) chosen[key] = data[key];
      continue;
    }
    const name = folded(key, names);
    if (name === undefined) continue;
    chosen ??= {};
    chosen[name] = data[key];
    delete data[key];
  }
  if (chosen) for (const name of Object.keys(chosen)) data[name] = chosen[name];
  for (const name of names) if (Object.hasOwn(data, name)) foldKeys(data[name], props[name]);
}
