// Structured JSON logs on stderr (stdout is kept for results, e.g. `--json`), one logger per
// component. RUNAHEAD_LOG_LEVEL selects the level (default: info).
import { pino, type DestinationStream, type Logger } from 'pino';

let root: Logger | null = null;
let destination: DestinationStream | null = null;

function rootLogger(): Logger {
  root ??= pino(
    {
      level: process.env.RUNAHEAD_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['*.token', '*.password', '*.key', 'headers.authorization'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}

/**
 * Sends every log line to `stream` instead of stderr. For tests, which keep a test's logs and show
 * them only when it fails (test/support/test-logs.ts); it must come before the first logger is made,
 * since loggers keep the destination they were made with.
 */
export function setLogDestination(stream: DestinationStream): void {
  if (root) throw new Error('setLogDestination: a logger already writes to stderr');
  destination = stream;
}

export type { Logger };
