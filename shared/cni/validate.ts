// Run-time schema compilation. The first compile in a process costs tens of
// milliseconds, so nothing compiles until a validator is first called, and VERSION
// never calls one.
import Ajv, { type JSONSchemaType } from "ajv";
import { formats } from "./formats";
import { type AjvValidate, wrapValidator } from "./schema-error";

let ajv: Ajv | undefined;

function instance(): Ajv {
  if (!ajv) {
    // Defaults stay in code, not in schemas: ajv must not rewrite the config it checks.
    ajv = new Ajv({ allErrors: false, strict: false });
    for (const [name, check] of Object.entries(formats)) ajv.addFormat(name, check);
  }
  return ajv;
}

export function compileValidator<T>(schema: JSONSchemaType<T> | object, name: string): (data: unknown) => T {
  let parse: ((data: unknown) => T) | undefined;
  return (data) => {
    parse ??= wrapValidator<T>(instance().compile(schema) as AjvValidate, name);
    return parse(data);
  };
}
