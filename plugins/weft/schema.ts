// The weft plugin's JSON schema. Plain data: the build evaluates this file to
// precompile the validator (build/validators.mjs), so it must have no side effects.
import { bridgeName } from "../bridge/schema";

export const weftSchema = {
  type: "object",
  properties: {
    stateDir: { type: "string", minLength: 1 },
    dataDir: { type: "string", minLength: 1 },
    bridge: bridgeName,
  },
};
