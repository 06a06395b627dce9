/**
 * What `require("@azure/functions-core")` returns under Jest (see jest.config.js `moduleNameMapper`): the local
 * runtime's stand-in, the same CoreApi instance `LocalFunctionsHost` reads registrations from.
 */
import { installCoreApi } from "../../dev/runtime/core-api";

export = installCoreApi();
