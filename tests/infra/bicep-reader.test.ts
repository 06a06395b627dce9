/** The reader itself, on the Bicep shapes the other infra tests rely on (and the traps around them). */
import { describe, expect, it } from "@jest/globals";
import { BicepReadError, decoratorValue, get, interpolationParts, literal, parseBicep, parseValue, show, stripComments } from "./bicep-reader";

describe("bicep-reader", () => {
  it("blanks comments but not comment-like text inside strings", () => {
    const src = "var a = 'http://x' // note\n/* block\n{ */ var b = 1";
    const code = stripComments(src);
    expect(code).toContain("'http://x'");
    expect(code).not.toContain("note");
    expect(code.split("\n")).toHaveLength(3);
    expect(parseBicep(src).vars.get("b")).toEqual({ kind: "number", value: 1 });
  });

  it("reads params with decorators, nullable types and defaults", () => {
    const f = parseBicep(
      [
        "@description('The region (EU only)')",
        "@allowed([",
        "  'westeurope'",
        "  'northeurope'",
        "])",
        "param location string",
        "param principalId string = ''",
        "param extra object?",
      ].join("\n"),
    );
    const location = f.params.get("location")!;
    expect(literal(decoratorValue(location.decorators, "allowed"))).toEqual(["westeurope", "northeurope"]);
    expect(location.default).toBeUndefined();
    expect(literal(f.params.get("principalId")!.default)).toBe("");
    expect(f.params.get("extra")).toMatchObject({ type: "object", nullable: true });
  });

  it("reads resources with conditions, loops, existing, and nested objects", () => {
    const f = parseBicep(
      [
        "resource sa 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {",
        "  name: accountName",
        "}",
        "resource q 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' = [for name in queueNames: {",
        "  parent: qs",
        "  name: name",
        "}]",
        "resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {",
        "  name: guid(sa.id, principalId, role)",
        "  scope: sa",
        "  properties: {",
        "    principalId: principalId",
        "    enabled: true",
        "  }",
        "}",
      ].join("\n"),
    );
    expect(f.resources.map((r) => [r.symbol, r.type, r.apiVersion, r.existing])).toEqual([
      ["sa", "Microsoft.Storage/storageAccounts", "2024-01-01", true],
      ["q", "Microsoft.Storage/storageAccounts/queueServices/queues", "2024-01-01", false],
      ["ra", "Microsoft.Authorization/roleAssignments", "2022-04-01", false],
    ]);
    expect(f.resources[1]!.loop).toEqual({ item: "name", source: "queueNames" });
    expect(f.resources[2]!.condition).toBe("!empty(principalId)");
    expect(show(f.resources[2]!.body.entries.name)).toBe("guid(sa.id, principalId, role)");
    expect(literal(get(f.resources[2]!.body, "properties.enabled"))).toBe(true);
  });

  it("keeps braces, colons and quotes inside strings and interpolations out of the structure", () => {
    const v = parseValue("{\n  a: 'x: {not an object}'\n  b: 'it\\'s ${join(['p', 'q'], ':')}/'\n  'c-d': [\n    1\n    'two'\n  ]\n}");
    expect(literal(get(v, "a"))).toBe("x: {not an object}");
    const b = get(v, "b");
    expect(b).toMatchObject({ kind: "string", interpolated: true });
    expect(b?.kind === "string" ? interpolationParts(b.raw) : []).toEqual([{ text: "it's " }, { expr: "join(['p', 'q'], ':')" }, { text: "/" }]);
    expect(literal(get(v, "c-d"))).toEqual([1, "two"]);
  });

  it("reads single-line objects and arrays, and keeps expressions as text", () => {
    expect(literal(parseValue("{ name: 'FC1', tier: 'FlexConsumption' }"))).toEqual({ name: "FC1", tier: "FlexConsumption" });
    expect(literal(parseValue("['a', 'b']"))).toEqual(["a", "b"]);
    expect(parseValue("cond ? [ { name: 'x' } ] : []")).toEqual({ kind: "expr", text: "cond ? [ { name: 'x' } ] : []" });
    expect(literal(parseValue("'a${b}'"))).toBeUndefined();
  });

  it("follows an expression onto continuation lines", () => {
    const f = parseBicep("var x = cond\n  ? 'a'\n  : 'b'\nvar y = 2");
    expect(show(f.vars.get("x"))).toBe("cond ? 'a' : 'b'");
    expect(literal(f.vars.get("y"))).toBe(2);
  });

  it("reads modules with their params, and outputs", () => {
    const f = parseBicep(
      [
        "targetScope = 'subscription'",
        "module st 'core/storage.bicep' = {",
        "  name: 'storage'",
        "  scope: rg",
        "  params: {",
        "    name: 'st${token}'",
        "    location: location",
        "  }",
        "}",
        "output NAME string = st.outputs.name",
      ].join("\n"),
    );
    expect(f.targetScope).toBe("subscription");
    expect(f.modules[0]).toMatchObject({ symbol: "st", path: "core/storage.bicep" });
    expect(Object.keys(f.modules[0]!.params)).toEqual(["name", "location"]);
    expect(show(f.outputs.get("NAME")!.value)).toBe("st.outputs.name");
  });

  it("reports nested resource declarations, which it does not list", () => {
    const f = parseBicep("resource a 'A/b@2024-01-01' = {\n  name: 'a'\n  resource c 'children@2024-01-01' = {\n    name: 'c'\n  }\n}");
    expect(f.nestedResourceDeclarations).toBe(true);
  });

  it("fails with the file and line on text it cannot follow", () => {
    expect(() => parseBicep("var ok = 1\nwhatever x", "x.bicep")).toThrow(BicepReadError);
    expect(() => parseBicep("var ok = 1\nwhatever x", "x.bicep")).toThrow(/x\.bicep:2:/);
  });
});
