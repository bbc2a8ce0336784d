// `--name value`, `--name=value`, and for boolean flags `--name`, `--name=false`,
// `--name false`, `--no-name`: the one flag syntax of `weft agent` and `weft install`.

export interface Flags {
  values: Map<string, string>;
  bools: Map<string, boolean>;
}

function boolValue(name: string, v: string): boolean {
  if (/^(true|1|yes|on)$/i.test(v)) return true;
  if (/^(false|0|no|off)$/i.test(v)) return false;
  throw new Error(`--${name}: expected true or false, not "${v}"`);
}

/** Parses `argv` against the flags a command knows. Throws with a message naming the bad flag. */
export function parseFlags(argv: string[], known: { values: ReadonlySet<string>; bools?: ReadonlySet<string> }): Flags {
  const bools = known.bools ?? new Set<string>();
  const out: Flags = { values: new Map(), bools: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (name.startsWith("no-") && bools.has(name.slice(3)) && inline === undefined) {
      out.bools.set(name.slice(3), false);
      continue;
    }
    if (bools.has(name)) {
      const next = argv[i + 1];
      if (inline !== undefined) out.bools.set(name, boolValue(name, inline));
      else if (next !== undefined && /^(true|false)$/i.test(next)) out.bools.set(name, boolValue(name, argv[++i]!));
      else out.bools.set(name, true);
      continue;
    }
    if (!known.values.has(name)) throw new Error(`unknown flag --${name}`);
    // The next flag is not a value: `--bin-dir --conf-dir X` would install into "./--conf-dir".
    const v = inline ?? (argv[i + 1]?.startsWith("--") ? undefined : argv[++i]);
    // An empty one too: `--state-dir=` (a $(VAR) of an empty ConfigMap key) is never meant.
    if (v === undefined || v === "") throw new Error(`--${name} needs a value`);
    out.values.set(name, v);
  }
  return out;
}
