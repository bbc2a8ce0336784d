// The bridge config's JSON schema. Plain data: the build evaluates this file to
// precompile the validator (build/validators.mjs), so it must have no side effects.

/** A Linux interface name usable as a bridge (also the weft plugin's `bridge` key). */
export const bridgeName = { type: "string", minLength: 1, maxLength: 15, pattern: "^[^/:\\s]+$" };

export const bridgeSchema = {
  type: "object",
  properties: {
    bridge: bridgeName,
    isGateway: { type: "boolean" },
    isDefaultGateway: { type: "boolean" },
    forceAddress: { type: "boolean" },
    ipMasq: { type: "boolean" },
    mtu: { type: "integer", minimum: 0, maximum: 65535 },
    hairpinMode: { type: "boolean" },
    promiscMode: { type: "boolean" },
    vlan: { type: "integer", minimum: 0, maximum: 4094 },
    vlanTrunk: {
      type: "array",
      items: { type: "object", properties: { minID: { type: "integer" }, maxID: { type: "integer" }, id: { type: "integer" } } },
    },
    preserveDefaultVlan: { type: "boolean" },
    enabledad: { type: "boolean" },
    macspoofchk: { type: "boolean" },
    portIsolation: { type: "boolean" },
    disableContainerInterface: { type: "boolean" },
    // No IPAM type (or no ipam at all): a layer-2 network, as in the reference.
    ipam: { type: "object", properties: { type: { type: "string" } } },
    // The network's own DNS settings; they replace the IPAM plugin's in the result.
    dns: {
      type: "object",
      properties: { nameservers: { type: "array", items: { type: "string" } }, domain: { type: "string" }, search: { type: "array", items: { type: "string" } }, options: { type: "array", items: { type: "string" } } },
    },
    // A requested MAC is parsed by ADD alone: a bad one must not keep DEL from cleaning up.
    runtimeConfig: { type: "object", properties: { mac: { type: "string" } } },
    args: {
      type: "object",
      properties: { cni: { type: "object", properties: { mac: { type: "string" } } } },
    },
  },
};
