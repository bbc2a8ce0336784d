import { describe, expect, it } from "vitest";
import { cniErrorOf } from "../../helpers/cni-error";
import { compileValidator } from "../../../shared/cni/validate";

interface Conf {
  name: string;
  mode?: "a" | "b";
  ipam: { ranges: { subnet: string; gateway?: string }[][] };
}

const schema = {
  type: "object",
  required: ["name", "ipam"],
  properties: {
    name: { type: "string" },
    mode: { enum: ["a", "b"] },
    ipam: {
      type: "object",
      additionalProperties: false,
      properties: {
        ranges: {
          type: "array",
          items: {
            type: "array",
            items: {
              type: "object",
              required: ["subnet"],
              properties: { subnet: { type: "string", format: "cidr" }, gateway: { type: "string", format: "ip" } },
            },
          },
        },
      },
    },
  },
};

const parse = compileValidator<Conf>(schema, "bridge");

function msg(data: unknown): string {
  const e = cniErrorOf(() => parse(data));
  expect(e.code).toBe(7);
  return e.message;
}

describe("compileValidator", () => {
  it("returns valid data typed and unchanged", () => {
    const good = { name: "n", ipam: { ranges: [[{ subnet: "10.1.0.0/16", gateway: "10.1.0.1" }]] } };
    expect(parse(good)).toBe(good);
  });

  it("explains the first problem on one line with its path", () => {
    expect(msg({ name: "n", ipam: { ranges: [[{ subnet: "10.1.0.0/33" }]] } })).toBe(
      'invalid bridge config: /ipam/ranges/0/0/subnet must match format "cidr", got "10.1.0.0/33"',
    );
    expect(msg({ name: "n", ipam: { ranges: [[{ subnet: "10.1.0.0/16", gateway: "10.1.0.300" }]] } })).toMatch(/\/gateway must match format "ip"/);
    expect(msg({ ipam: { ranges: [] } })).toBe("invalid bridge config: must have required property 'name'");
    expect(msg({ name: 5, ipam: {} })).toBe("invalid bridge config: /name must be string, got 5");
    expect(msg({ name: "n", ipam: { rangez: [] } })).toBe('invalid bridge config: /ipam must not have property "rangez"');
    expect(msg({ name: "n", mode: "c", ipam: {} })).toBe('invalid bridge config: /mode must be one of "a", "b", got "c"');
  });
});
