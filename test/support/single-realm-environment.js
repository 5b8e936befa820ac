// The test environment of every project (jest.config.js).
//
// Jest runs each test file in its own V8 context, so a Float32Array made by a native addon
// (onnxruntime-node's outputs) is not `instanceof Float32Array` inside the test. Sharing the
// binary-data constructors with the outer realm makes native results and test code agree.
//
// It also keeps the logs of the code under test (test-logs.ts): what is written between the end of
// one test and the end of the next (its hooks included) is dropped if the test passes and added to
// its errors if it fails, so that Jest prints it with the failure and a passing run prints no logs.
import { TestEnvironment } from 'jest-environment-node';

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float16Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

/** Must match test-logs.ts. */
const SINK = Symbol.for('runahead.test-logs');
/** A failing test shows the last lines only: a debug-level worker writes thousands. */
const MAX_LINES = 400;
const MAX_LINE_CHARS = 4000;

/** The lines written since the last take(); written to by pino (whole lines) and recordLog. */
class LogBuffer {
  lines = [];
  left = 0;
  partial = '';

  write(text) {
    const parts = (this.partial + String(text)).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (line === '') continue;
      this.lines.push(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
    }
    if (this.lines.length > 2 * MAX_LINES) {
      const cut = this.lines.length - MAX_LINES;
      this.lines.splice(0, cut);
      this.left += cut;
    }
  }

  /** The buffered text, or '' when nothing was written; empties the buffer. */
  take() {
    if (this.partial) this.write('\n');
    const cut = Math.max(0, this.lines.length - MAX_LINES);
    const left = this.left + cut;
    const lines = this.lines.slice(cut);
    this.lines = [];
    this.left = 0;
    if (lines.length === 0) return '';
    const head = left > 0 ? `(${left} earlier lines left out)\n` : '';
    return head + lines.join('\n');
  }
}

/** An error that Jest prints as it is: a title and the lines, no stack frames. */
function logsError(title, text) {
  const err = new Error(title);
  err.stack = `${title}\n${text}`;
  return err;
}

export default class SingleRealmEnvironment extends TestEnvironment {
  #logs = new LogBuffer();

  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) {
      if (name in globalThis) this.global[name] = globalThis[name];
    }
    this.global[SINK] = this.#logs;
  }

  handleTestEvent(event) {
    if (event.name === 'test_done') {
      const text = this.#logs.take();
      if (event.test.errors.length > 0 && text)
        event.test.errors.push(logsError('Logs of the code under test, for this failing test:', text));
    } else if (event.name === 'hook_failure' && event.hook.type === 'afterAll') {
      // Jest reports it apart from any test, so the logs go to stderr.
      const text = this.#logs.take();
      if (text) process.stderr.write(`Logs of the code under test, before the failing afterAll:\n${text}\n`);
    }
  }
}
