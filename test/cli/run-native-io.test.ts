// The chain over real gRPC with every rank's graphs on the ort_io addon (what a GPU rank runs by
// default), on the CPU: the tokens are the reference's (transformers, test/fixtures), and the K/V each
// rank sends leave its engine through the reused host buffers.
import { describe, expect, it } from '@jest/globals';
import { runCli } from '../support/cli.ts';
import { modelDir, reference } from '../support/fixtures.ts';

describe('runahead run --io native', () => {
  it('generates the reference tokens through the addon on every rank', async () => {
    const prompt = reference.models['llama3-tiny'].prompts[0]!;
    const r = await runCli(
      [
        'run',
        '--ranks',
        '3',
        '--model',
        modelDir('llama3-tiny'),
        '--prompt',
        prompt.text,
        '--max-new-tokens',
        '7',
        '--io',
        'native',
        '--json',
      ],
      { timeoutMs: 90_000 },
    );
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { tokens: number[]; ranks: { bytesSent: number }[] };
    expect(out.tokens).toEqual(prompt.greedy);
    expect(out.ranks[0]!.bytesSent).toBeGreaterThan(0);
  }, 100_000);

  it('refuses an IO path it does not know, naming the flag', async () => {
    const r = await runCli(['run', '--model', 'synthetic:tiny', '--prompt-tokens', '8', '--io', 'dma']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--io must be auto, native or onnxruntime-node/);
  }, 30_000);
});
