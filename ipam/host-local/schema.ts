// JSON schemas of host-local's `ipam` section and of runtimeConfig.ipRanges. Plain data:
// the build evaluates this file to precompile the validators (build/validators.mjs), so
// it must have no side effects.

const rangeSchema = {
  type: "object",
  required: ["subnet"],
  properties: {
    subnet: { type: "string" },
    rangeStart: { type: "string" },
    rangeEnd: { type: "string" },
    gateway: { type: "string" },
  },
};

export const rangeSetsSchema = { type: "array", items: { type: "array", minItems: 1, items: rangeSchema } };

const uint = { type: "integer", minimum: 0 };

// Unknown keys are allowed: the reference ignores them, and configs in the wild carry some.
export const ipamSchema = {
  type: "object",
  required: ["type"],
  properties: {
    type: { enum: ["host-local"] },
    ...rangeSchema.properties,
    ranges: rangeSetsSchema,
    routes: {
      type: "array",
      items: {
        type: "object",
        required: ["dst"],
        properties: {
          dst: { type: "string" },
          gw: { type: "string" },
          mtu: uint,
          advmss: uint,
          priority: uint,
          table: uint,
          scope: uint,
        },
      },
    },
    dataDir: { type: "string" },
    resolvConf: { type: "string" },
  },
};
