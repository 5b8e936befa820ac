// The logs of the code under test — this process's loggers (core/log.ts) and the stderr of the
// processes a test starts — kept per test and shown only with a failing test's errors, so that a
// passing run prints none. The buffer lives in the test environment
// (single-realm-environment.js), which sees each test end and how.

/** Where the environment puts the buffer: a registered symbol, the same in the test's realm. */
const SINK = Symbol.for('runahead.test-logs');

interface Sink {
  write(text: string): void;
}

/** The current test file's log buffer; undefined outside Jest (a helper run by plain Node.js). */
export function testLogSink(): Sink | undefined {
  return (globalThis as { [SINK]?: Sink })[SINK];
}

/**
 * Adds what a child process wrote (one line or many) to the current test's log, each line tagged
 * with `source`. Outside Jest, nothing: the helpers keep their own copy (WorkerProcess.log, ...).
 */
export function recordLog(source: string, text: string): void {
  const sink = testLogSink();
  if (!sink) return;
  const tagged = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => `[${source}] ${line}\n`)
    .join('');
  if (tagged !== '') sink.write(tagged);
}
