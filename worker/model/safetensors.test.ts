import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors, readSafetensorsHeader, readTensorBytes } from './safetensors.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const f32 = Float32Array.of(1, 2, 3, 4, 5, 6);
const sample = () =>
  encodeSafetensors({
    a: { dtype: 'F32', shape: [2, 3], data: new Uint8Array(f32.buffer) },
    b: { dtype: 'BF16', shape: [2], data: new Uint8Array(Uint16Array.of(0x3f80, 0x4000).buffer) },
  });

async function write(name: string, data: Buffer | string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, data);
  return path;
}

function withHeader(header: object, data = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('safetensors', () => {
  it('round-trips tensors', async () => {
    const path = await write('ok.safetensors', sample());
    const infos = await readSafetensorsHeader(path);
    expect(infos.map((i) => [i.name, i.dtype, i.shape])).toEqual([
      ['a', 'F32', [2, 3]],
      ['b', 'BF16', [2]],
    ]);
    const a = await readTensorBytes(infos[0]!);
    expect(Array.from(new Float32Array(a.buffer))).toEqual(Array.from(f32));
  });

  it('refuses a truncated file, naming the tensor', async () => {
    const full = sample();
    const path = await write('cut.safetensors', full.subarray(0, full.length - 3));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/truncated: tensor b needs data up to byte 28/);
  });

  it('refuses a file shorter than its header length', async () => {
    const path = await write('short.safetensors', sample().subarray(0, 20));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/header length \d+ exceeds the file size 20/);
  });

  it('refuses an empty file', async () => {
    await expect(readSafetensorsHeader(await write('empty.safetensors', ''))).rejects.toThrow(
      /8-byte header length is missing/,
    );
  });

  it('refuses a header that is not JSON', async () => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    const path = await write('badjson.safetensors', Buffer.concat([len, Buffer.from('{oops')]));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/header is not valid JSON/);
  });

  it('refuses an unknown dtype, naming it and the tensor', async () => {
    const path = await write(
      'dtype.safetensors',
      withHeader({ w: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4)),
    );
    await expect(readSafetensorsHeader(path)).rejects.toThrow(
      /tensor w: dtype I8 is not supported \(supported: F32, F16, BF16\)/,
    );
  });

  it('refuses offsets that disagree with the shape', async () => {
    const path = await write(
      'offsets.safetensors',
      withHeader({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, Buffer.alloc(16)),
    );
    await expect(readSafetensorsHeader(path)).rejects.toThrow(
      /tensor w: data_offsets \[0, 8\] hold 8 bytes, shape \[4\] F32 needs 16/,
    );
  });

  it('refuses a malformed entry', async () => {
    const path = await write('entry.safetensors', withHeader({ w: { dtype: 'F32', shape: 'four' } }));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/tensor w: malformed header entry/);
  });

  it('names a missing file', async () => {
    await expect(readSafetensorsHeader(join(dir, 'nope.safetensors'))).rejects.toThrow(
      /nope.safetensors: cannot open/,
    );
  });
});
