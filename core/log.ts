// Structured JSON logs on stderr (stdout is kept for results, e.g. `--json`), one logger per
// component. RUNAHEAD_LOG_LEVEL selects the level (default: info).
import { pino, type Logger } from 'pino';

let root: Logger | null = null;

function rootLogger(): Logger {
  root ??= pino(
    {
      level: process.env.RUNAHEAD_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['*.token', '*.password', '*.key', 'headers.authorization'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}

export type { Logger };
