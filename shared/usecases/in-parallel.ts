/**
 * Bounded parallelism for the steps of queue jobs.
 */

/**
 * Runs `f` over `items`, at most `n` at a time, in order of start; the results in the order of `items`. After a
 * failure no new item is started, and the first error is thrown only once every call already started has ended, so
 * nothing of a failed step still runs when its caller hears of the failure (a lease given back then is not shared
 * with a call still under way).
 */
export async function inParallel<T, R>(items: readonly T[], n: number, f: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length && !failure) {
        const i = next++;
        try {
          out[i] = await f(items[i]!, i);
        } catch (err) {
          failure ??= { err };
        }
      }
    }),
  );
  if (failure) throw failure.err;
  return out;
}
