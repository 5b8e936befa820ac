// Benchmark reports as markdown tables, with the command that produced them.
import type { Summary } from './stats.ts';

export interface BenchRow {
  readonly context: number;
  readonly mode: string;
  readonly ranks: number;
  readonly ttft: Summary;
  /** Free-form extra columns (bytes sent, speedups...). */
  readonly extra?: Readonly<Record<string, string>>;
}

export interface BenchReport {
  readonly title: string;
  readonly command: string;
  readonly machine: string;
  readonly settings: readonly string[];
  readonly rows: readonly BenchRow[];
  readonly notes?: readonly string[];
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

export function renderMarkdown(report: BenchReport): string {
  const extraKeys = [...new Set(report.rows.flatMap((r) => Object.keys(r.extra ?? {})))];
  const head = [
    'context',
    'mode',
    'ranks',
    'TTFT median (ms)',
    'min',
    'max',
    'runs',
    'prompt tok/s',
    ...extraKeys,
  ];
  const lines = [
    `# ${report.title}`,
    '',
    '```',
    report.command,
    '```',
    '',
    `- machine: ${report.machine}`,
    ...report.settings.map((s) => `- ${s}`),
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...report.rows.map(
      (r) =>
        `| ${[
          r.context,
          r.mode,
          r.ranks,
          fmt(r.ttft.median),
          fmt(r.ttft.min),
          fmt(r.ttft.max),
          r.ttft.runs,
          ((r.context / r.ttft.median) * 1000).toFixed(0),
          ...extraKeys.map((k) => r.extra?.[k] ?? ''),
        ].join(' | ')} |`,
    ),
  ];
  if (report.notes?.length) lines.push('', ...report.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}
