/**
 * Jest's `expect`, plus an optional second argument: a message that heads the failure report, so an assertion over
 * a list or a generated case says which rule or case failed (`expect(found, "regions outside the EU").toEqual([])`).
 * Matchers behave exactly as Jest's own; `.not`, `.resolves` and `.rejects` keep the message.
 */
import { expect as jestExpect } from "@jest/globals";

type JestExpect = typeof jestExpect;
type Matchers = ReturnType<JestExpect>;

function labelled(error: unknown, message: string): unknown {
  if (error instanceof Error) {
    error.message = `${message}\n\n${error.message}`;
    return error;
  }
  return error;
}

function withMessage<T extends object>(target: T, message: string): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value: unknown = Reflect.get(obj, prop, receiver);
      if (typeof value === "function") {
        return (...args: unknown[]) => {
          try {
            const result: unknown = (value as (...a: unknown[]) => unknown).apply(obj, args);
            // .resolves/.rejects matchers return a promise: label its failure too.
            if (result instanceof Promise) return result.catch((err: unknown) => Promise.reject(labelled(err, message)));
            return result;
          } catch (err) {
            throw labelled(err, message);
          }
        };
      }
      // .not, .resolves, .rejects: objects of matchers.
      if (typeof value === "object" && value !== null) return withMessage(value, message);
      return value;
    },
  });
}

function expectWithMessage(actual: unknown, message?: string): Matchers {
  const matchers = jestExpect(actual);
  return message === undefined ? matchers : withMessage(matchers, message);
}

/** `expect(actual, message?)`; the static members (`expect.arrayContaining`, …) are Jest's. */
export const expect = Object.assign(expectWithMessage, jestExpect) as ((actual: unknown, message?: string) => Matchers) & JestExpect;
