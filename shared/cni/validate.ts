// Schema validation at the config boundary. This file is what vitest runs: it compiles
// with ajv at run time. The build swaps it for a generated module of ajv *standalone*
// validators (build/validators.mjs), because compiling a schema costs tens of
// milliseconds per plugin call while precompiled code costs nothing measurable.
// Both paths share createAjv and wrapValidator, so they produce the same messages.
//
// Call sites must keep one form for the build to find them:
//   import { fooSchema } from "./schema";  // a module of plain data (no side effects)
//   const validate = compileValidator<Foo>(fooSchema, "foo");  // name: a string literal
import Ajv, { type JSONSchemaType, type Options } from "ajv";
import { formats } from "./formats";
import { type AjvValidate, wrapValidator } from "./schema-error";

// Defaults stay in code, not in schemas: ajv must not rewrite the config it checks (only
// wrapValidator's foldKeys renames keys, in place, to the schema's spelling).
export function createAjv(options: Options = {}): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: false, ...options });
  for (const [name, check] of Object.entries(formats)) ajv.addFormat(name, check);
  return ajv;
}

let ajv: Ajv | undefined;

// Nothing compiles until a validator is first called; VERSION never calls one.
export function compileValidator<T>(schema: JSONSchemaType<T> | object, name: string): (data: unknown) => T {
  let parse: ((data: unknown) => T) | undefined;
  return (data) => {
    parse ??= wrapValidator<T>((ajv ??= createAjv()).compile(schema) as AjvValidate, name, schema);
    return parse(data);
  };
}
