/** The model of ARM the other infra tests rely on (./arm.ts, ./compiled.ts), on small templates of its own. */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { ArmExpressionError, eager, evaluateExpr, parseExpression, showExpr, type ArmFunction } from "./arm";
import { deploy, ofType, only, type Template } from "./compiled";

const SUB = "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#";
const RG = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";

describe("ARM expressions", () => {
  it("parses strings with '' escapes, numbers, calls, properties and indexes, and prints them back", () => {
    const e = parseExpression("format('it''s {0}', variables('x')[1].name, -3)");
    expect(showExpr(e)).toBe("format('it''s {0}', variables('x')[1].name, -3)");
    expect(() => parseExpression("format('a'")).toThrow(ArmExpressionError);
  });

  it("evaluates only the branch if() takes, and refuses functions it does not know", () => {
    const fns = new Map<string, ArmFunction>([
      ["if", (args, ev) => (ev(args[0]!) === true ? ev(args[1]!) : ev(args[2]!))],
      [
        "boom",
        eager(() => {
          throw new Error("evaluated");
        }),
      ],
      ["true", () => true],
    ]);
    expect(evaluateExpr(parseExpression("if(true(), 'yes', boom())"), fns)).toBe("yes");
    expect(() => evaluateExpr(parseExpression("listKeys('x')"), fns)).toThrow(/listKeys\(\) is not modelled/);
  });
});

describe("deployment model", () => {
  const template: Template = {
    $schema: SUB,
    parameters: {
      env: { type: "string", maxLength: 5 },
      flag: { type: "bool", defaultValue: false },
      region: { type: "string", allowedValues: ["westeurope"], defaultValue: "westeurope" },
    },
    variables: { names: ["a", "b"], label: "[format('{0}-{1}', parameters('env'), parameters('flag'))]" },
    resources: [
      { type: "Microsoft.Resources/resourceGroups", apiVersion: "2025-03-01", name: "[format('rg-{0}', parameters('env'))]", location: "[parameters('region')]" },
      {
        type: "Microsoft.Resources/deployments",
        apiVersion: "2025-04-01",
        name: "inner",
        resourceGroup: "[format('rg-{0}', parameters('env'))]",
        properties: {
          expressionEvaluationOptions: { scope: "inner" },
          mode: "Incremental",
          parameters: { prefix: { value: "[variables('label')]" }, names: { value: "[variables('names')]" } },
          template: {
            $schema: RG,
            parameters: { prefix: { type: "string" }, names: { type: "array" } },
            resources: [
              {
                type: "Microsoft.Storage/storageAccounts",
                apiVersion: "2025-01-01",
                name: "[format('{0}{1}', parameters('prefix'), parameters('names')[copyIndex()])]",
                copy: { name: "accounts", count: "[length(parameters('names'))]" },
                location: "westeurope",
                properties: { literal: "[[not an expression]" },
              },
            ],
            outputs: {
              blob: { type: "string", value: "[reference(resourceId('Microsoft.Storage/storageAccounts', format('{0}a', parameters('prefix'))), '2025-01-01').primaryEndpoints.blob]" },
            },
          },
        },
        dependsOn: ["[subscriptionResourceId('Microsoft.Resources/resourceGroups', format('rg-{0}', parameters('env')))]"],
      },
    ],
    outputs: { blob: { type: "string", value: "[reference(extensionResourceId(format('/subscriptions/{0}/resourceGroups/rg-{1}', subscription().subscriptionId, parameters('env')), 'Microsoft.Resources/deployments', 'inner'), '2025-04-01').outputs.blob.value]" } },
  };

  it("expands copy loops, formats booleans as .NET does, keeps [[ literal, and passes module outputs up", () => {
    const d = deploy({ env: "dev" }, template);
    expect(ofType(d, "Microsoft.Storage/storageAccounts").map((r) => r.name)).toEqual(["dev-Falsea", "dev-Falseb"]);
    expect(only(ofType(d, "Microsoft.Storage/storageAccounts").filter((r) => r.name.endsWith("a")), "a").body.properties).toEqual({ literal: "[not an expression]" });
    expect(d.outputs.blob).toBe("https://dev-Falsea.blob.core.windows.net/");
  });

  it("validates parameters as ARM does: unknown, missing, type, allowed values, length", () => {
    expect(() => deploy({}, template)).toThrow(/required parameter 'env'/);
    expect(() => deploy({ env: "dev", other: 1 }, template)).toThrow(/'other' is not declared/);
    expect(() => deploy({ env: "dev", flag: "yes" }, template)).toThrow(/'flag' must be of type bool/);
    expect(() => deploy({ env: "dev", region: "eastus" }, template)).toThrow(/'region' must be one of/);
    expect(() => deploy({ env: "toolong" }, template)).toThrow(/'env' is longer than maxLength 5/);
  });

  it("refuses a dependency on something the template does not declare", () => {
    const broken: Template = { ...template, resources: [{ ...template.resources[1]!, dependsOn: ["nothing"] }] };
    expect(() => deploy({ env: "dev" }, broken)).toThrow(/depends on 'nothing'/);
  });
});
