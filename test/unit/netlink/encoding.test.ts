// The netlink wire helpers every request and reply goes through: attribute framing and
// strings, checked against bytes written out by hand.
import { describe, expect, it } from "vitest";
import { attr, attrList, attrMap, cstr, findAttr, strz, u8, utf8 } from "../../../shared/netlink/encoding";

describe("strz / cstr", () => {
  it("encodes UTF-8 with one trailing NUL, and reads it back", () => {
    expect([...strz("eth0")]).toEqual([0x65, 0x74, 0x68, 0x30, 0]);
    expect([...strz("é")]).toEqual([0xc3, 0xa9, 0]);
    expect([...strz("")]).toEqual([0]);
    // A lone surrogate (JSON allows one) becomes U+FFFD, the NUL still last.
    expect([...strz("\ud800x")]).toEqual([0xef, 0xbf, 0xbd, 0x78, 0]);
    expect(cstr(strz("vé0"))).toBe("vé0");
    expect([...utf8("vé")]).toEqual([0x76, 0xc3, 0xa9]);
  });
});

describe("attr / attrList / attrMap", () => {
  it("frames attributes with length, type and padding, and lists them in order", () => {
    const a = attr(3, strz("br0")); // 4 header + 4 payload: no padding
    const b = attr(4, u8(7)); // 4 + 1, padded to 8
    const nested = attr(18, [attr(1, strz("veth"))], true);
    expect([...a]).toEqual([8, 0, 3, 0, 0x62, 0x72, 0x30, 0]);
    expect([...b]).toEqual([5, 0, 4, 0, 7, 0, 0, 0]);
    expect(nested.readUInt16LE(2)).toBe(18 | 0x8000);
    const list = attrList(Buffer.concat([a, b, nested]));
    // NLA_F_NESTED is masked off the type; each payload is exactly its bytes.
    expect(list.map(([type, data]) => [type, data.length])).toEqual([[3, 4], [4, 1], [18, 12]]);
    expect(cstr(attrMap(list[2]![1]).get(1)!)).toBe("veth");
  });

  it("keeps the last of a repeated type, and rejects a length past the end", () => {
    expect(attrMap(Buffer.concat([attr(1, u8(1)), attr(1, u8(2))])).get(1)![0]).toBe(2);
    const broken = attr(1, u8(1));
    broken.writeUInt16LE(40, 0);
    expect(() => attrList(broken)).toThrow(/malformed netlink attribute/);
  });

  it("finds the first attribute of a type without reading past it", () => {
    const broken = attr(3, u8(9));
    broken.writeUInt16LE(40, 0);
    const buf = Buffer.concat([attr(1, u8(1)), attr(2, u8(2)), attr(2, u8(3)), broken]);
    expect(findAttr(buf, 2)![0]).toBe(2);
    expect(() => findAttr(buf, 5)).toThrow(/malformed netlink attribute/);
  });
});
