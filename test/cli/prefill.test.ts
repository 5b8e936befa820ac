import { describe, expect, it } from '@jest/globals';
import { runCli } from '../support/cli.ts';
import { modelDir, reference } from '../support/fixtures.ts';

describe('runahead prefill', () => {
  it('prints one JSON object with the first token, its text, the tokens, TTFT and the context length', async () => {
    const prompt = reference.models['llama2-tiny'].prompts[0]!;
    const r = await runCli([
      'prefill',
      '--model',
      modelDir('llama2-tiny'),
      '--prompt',
      prompt.text,
      '--max-new-tokens',
      '7',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      firstToken: prompt.greedy[0],
      firstTokenText: prompt.greedyText[0],
      tokens: prompt.greedy,
      contextLength: prompt.ids.length,
    });
    expect(out.ttftMs).toEqual(expect.any(Number));
    expect(out.ttftMs as number).toBeGreaterThan(0);
  });

  it('prints a human summary without --json', async () => {
    const r = await runCli(['prefill', '--model', 'synthetic:tiny', '--prompt-tokens', '64']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^first token {3}\d+ ".*"\nTTFT {10}[\d.]+ ms {2}\(64 prompt tokens, cpu float32/,
    );
  });

  it.each([
    [['--model', 'synthetic:tiny', '--prompt', 'x', '--ep', 'tpu'], /--ep must be one of cpu, webgpu, cuda/],
    [
      ['--model', 'synthetic:tiny', '--prompt', 'x', '--prompt-tokens', '5'],
      /give exactly one of --prompt <text>, --prompt-file <file>, --prompt-tokens <n>/,
    ],
    [['--model', 'synthetic:tiny', '--prompt', 'x', '--threads', 'many'], /--threads must be a number/],
    [['--model', 'synthetic:nope', '--prompt', 'x'], /unknown synthetic preset "nope"/],
    [
      ['--model', '/does/not/exist', '--prompt', 'x'],
      /checkpoint directory \/does\/not\/exist does not exist \(--model\)/,
    ],
    [
      ['--model', 'synthetic:tiny', '--prompt', 'x', '--ep', 'cuda'],
      // No CUDA provider here (CI, this machine): the probe session fails, and the message says
      // what the provider is and how to install it.
      /execution provider "cuda" does not load \(.*\)\. onnxruntime-node 1\.29\.0 needs onnxruntime's CUDA provider .* run `make cuda`/,
    ],
    [['--model', 'synthetic:tiny', '--prompt-file', '/does/not/exist.txt'], /ENOENT.*exist\.txt/],
  ])('refuses %j with a clear message', async (args, message) => {
    const r = await runCli(['prefill', ...args]);
    // 2: a configuration error (running again cannot help), as for run and worker.
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
