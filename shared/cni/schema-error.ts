// Turns an ajv validate function (compiled at run time, or generated ahead of time by
// ajv's standalone mode) into a typed parser that throws CNI error 7 with one clear line.
import type { ErrorObject } from "ajv";
import { CniError, ErrorCode } from "./errors";
import { foldKeys } from "./fold-keys";

export interface AjvValidate {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

// The offending value, looked up by the error's JSON pointer, so messages can show it.
function valueAt(data: unknown, pointer: string): unknown {
  let cur = data;
  for (const seg of pointer.split("/").slice(1)) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[seg.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return cur;
}

function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function describeSchemaError(e: ErrorObject, data: unknown): string {
  let text: string;
  switch (e.keyword) {
    case "additionalProperties":
      text = `must not have property "${String(e.params["additionalProperty"])}"`;
      break;
    case "enum":
      text = `must be one of ${(e.params["allowedValues"] as unknown[]).map(shown).join(", ")}, got ${shown(valueAt(data, e.instancePath))}`;
      break;
    case "required":
      text = e.message ?? "is missing a required property";
      break;
    default:
      text = `${e.message ?? "is invalid"}, got ${shown(valueAt(data, e.instancePath))}`;
  }
  return e.instancePath === "" ? text : `${e.instancePath} ${text}`;
}

/** `schema` is the one `validate` checks; the config's keys are folded to its spelling first. */
export function wrapValidator<T>(validate: AjvValidate, name: string, schema: unknown): (data: unknown) => T {
  return (data) => {
    foldKeys(data, schema);
    if (validate(data)) return data as T;
    const first = validate.errors?.[0];
    const why = first ? describeSchemaError(first, data) : "does not match its schema";
    throw new CniError(ErrorCode.InvalidConfig, `invalid ${name} config: ${why}`);
  };
}
