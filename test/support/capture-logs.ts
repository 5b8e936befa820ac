// Jest setup (jest.config.js `setupFiles`), run in each test file's module registry before the test:
// the loggers of the code under test write into the test's log buffer instead of stderr, shown only
// if the test fails (test-logs.ts).
import { setLogDestination } from '../../core/log.ts';
import { testLogSink } from './test-logs.ts';

const sink = testLogSink();
if (sink) setLogDestination(sink);
