// The Dockerfiles cannot be built here (no Docker engine): they are checked with BuildKit's own
// build checks (dockerfile-check, scripts/setup-tools.sh) and against this project's rules: pinned
// bases, multi-stage, production dependencies only, a numeric non-root user, the CUDA provider.
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, toolPath } from '../support/tools.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DOCKERFILES = ['images/operator.Dockerfile', 'images/worker.Dockerfile'] as const;

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with continuation lines joined; comments and parser directives dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending === '') start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = pending + line;
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start });
  });
  return out;
}

interface Stage {
  readonly name: string | undefined;
  readonly image: string;
  readonly body: Instruction[];
}

function stages(text: string): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>();
  const out: Stage[] = [];
  for (const ins of instructions(text)) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      const image = m[1]!.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_s, a?: string, b?: string) => args.get(a ?? b!) ?? '',
      );
      out.push({ name: m[2], image, body: [] });
    } else if (out.length === 0 && ins.keyword === 'ARG') {
      const m = /^(\w+)=(\S+)$/.exec(ins.args);
      if (m) args.set(m[1]!, m[2]!);
    } else {
      out.at(-1)?.body.push(ins);
    }
  }
  return { args, stages: out };
}

const read = (file: string): string => readFileSync(join(REPO, file), 'utf8');

describe("BuildKit's build checks (dockerfile-check)", () => {
  test.each(DOCKERFILES)(
    '%s has no violation',
    async (file) => {
      const r = await run(toolPath('dockerfile-check'), [join(REPO, file)]);
      expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({
        code: 0,
        out: expect.stringContaining('no violations'),
      });
    },
    30_000,
  );

  test('the checker does find violations', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runahead-dockerfile-'));
    const bad = join(dir, 'Dockerfile');
    writeFileSync(bad, 'from node:24 as Build\nENV API_TOKEN=x\nCMD node main.js\n');
    const r = await run(toolPath('dockerfile-check'), [bad]);
    expect(r.code).toBe(1);
    for (const rule of [
      'StageNameCasing',
      'ConsistentInstructionCasing',
      'SecretsUsedInArgOrEnv',
      'JSONArgsRecommended',
    ])
      expect(r.stdout).toContain(`WARNING: ${rule}`);
  });
});

describe.each(DOCKERFILES)('%s', (file) => {
  const text = read(file);
  const { stages: all } = stages(text);
  const names = new Set(all.map((s) => s.name).filter(Boolean));
  const final = all.at(-1)!;
  const finalBody = final.body.map((i) => `${i.keyword} ${i.args}`).join('\n');

  test('is multi-stage and every base image is pinned to an exact version (or a digest), never Alpine', () => {
    expect(all.length).toBeGreaterThanOrEqual(3);
    for (const s of all.filter((s) => !names.has(s.image))) {
      expect(s.image).toMatch(/^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[a-f0-9]{64})?$/);
      expect(s.image).toMatch(/:\d+\.\d+\.\d+|@sha256:/);
      expect(s.image).not.toMatch(/alpine|:latest/);
    }
  });

  test('installs production dependencies only, with install scripts under control', () => {
    expect(text).toMatch(/npm ci --omit=dev --ignore-scripts/);
  });

  test('runs as a numeric non-root user from the final stage on', () => {
    const users = final.body.filter((i) => i.keyword === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const last = users.at(-1)!.args;
    expect(last).toMatch(/^\d+(:\d+)?$/);
    expect(Number(last.split(':')[0])).toBeGreaterThan(0);
  });

  test('starts the runahead CLI from the compiled build (exec form)', () => {
    expect(finalBody).toContain('ENTRYPOINT ["node", "/app/bin/runahead.js"]');
    expect(finalBody).toMatch(/COPY --from=build \/src\/dist dist/);
    expect(text).toMatch(/tsc -p tsconfig\.build\.json/);
  });

  test('copies from the build context only what .dockerignore lets in', () => {
    const allowed = read('.dockerignore')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = all
      .flatMap((s) => s.body)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) expect([src, allowed.includes(src)]).toEqual([src, true]);
  });
});

describe('the worker image', () => {
  const text = read('images/worker.Dockerfile');
  const { stages: all } = stages(text);

  test('runs on a CUDA 13 runtime base with cuDNN (glibc, for onnxruntime-node)', () => {
    expect(all.at(-1)!.image).toMatch(/^nvidia\/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
  });

  test("installs onnxruntime's CUDA provider with the script of `make cuda`, for the pinned onnxruntime-node", () => {
    expect(text).toMatch(/scripts\/setup-cuda-provider\.sh \/app/);
    expect(text).toMatch(
      /test -f node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\/libonnxruntime_providers_cuda\.so/,
    );
    const script = readFileSync(join(REPO, 'scripts/setup-cuda-provider.sh'), 'utf8');
    const pinned = (
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    ).dependencies['onnxruntime-node'];
    expect(script).toContain(`want=${pinned}`);
  });

  test('sets the glibc allocator settings the engine relies on', async () => {
    const { MALLOC_TUNING_ENV } = await import('../../worker/runtime/ort.ts');
    for (const [k, v] of Object.entries(MALLOC_TUNING_ENV)) expect(text).toContain(`${k}=${v}`);
  });
});
