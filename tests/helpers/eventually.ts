/**
 * Retries an assertion until it passes or the time is up. For asynchronous work the test does not control
 * (a queue poll, a background run); never for deadlines, which tests reach by moving the clock.
 */
export async function eventually(assertion: () => unknown | Promise<unknown>, timeoutMs = 45_000, intervalMs = 25): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
