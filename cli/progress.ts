// Progress on stderr: a bar when stderr is a terminal, a log line per step otherwise (CI, pods).
import cliProgress from 'cli-progress';
import { logger } from '../core/log.ts';

export interface Progress {
  update(done: number, total: number, what: string): void;
  stop(): void;
}

export function progress(title: string): Progress {
  if (!process.stderr.isTTY) {
    const log = logger('progress');
    let lastLogged = -1;
    return {
      update(done, total, what) {
        const pct = Math.floor((100 * done) / Math.max(1, total));
        if (pct >= lastLogged + 25 || done === total) {
          lastLogged = pct;
          log.info({ done, total, what }, `${title}: ${pct}%`);
        }
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: `${title} [{bar}] {value}/{total} {what}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, what) {
      if (!started) {
        bar.start(total, done, { what });
        started = true;
      } else bar.update(done, { what });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
