// Go's JSON decoding, which the reference plugins and libcni use, matches an object key to
// a field case-insensitively when no field has exactly that name: `"IsGateway": true` sets
// isGateway there. A config written for them must mean the same here, so before a config
// is validated its keys are renamed, in place, to the schema's spelling.

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Renames, in `data` and what it nests, each key that matches one of the schema's property
 * names only case-insensitively, unless the exact name is there too (as Go, the exact
 * spelling wins then). Keys the schema does not name are left as they are.
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
  for (const key of Object.keys(data)) {
    if (Object.hasOwn(props, key)) continue;
    const lower = key.toLowerCase();
    for (const name of names) {
      // Lengths first: most keys a schema does not name (cniVersion, name, type) end here.
      if (name.length !== key.length || name.toLowerCase() !== lower) continue;
      if (!Object.hasOwn(data, name)) {
        data[name] = data[key];
        delete data[key];
      }
      break;
    }
  }
  for (const name of names) if (Object.hasOwn(data, name)) foldKeys(data[name], props[name]);
}
