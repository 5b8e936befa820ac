// Reader for the safetensors format: an 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets}, then the raw data. Every size is checked against the
// file before a byte is trusted, so a truncated or inconsistent file is refused, not half-read.
import { open, type FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import { STORAGE_BYTES, elementCount, type StorageDType } from './tensor.ts';

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
}

export interface StoredTensorInfo {
  readonly name: string;
  readonly file: string;
  readonly dtype: StorageDType;
  readonly shape: readonly number[];
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

const HeaderEntrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

/** Headers above this are refused: real ones are kilobytes, and the length field is untrusted input. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function isStorageDType(dtype: string): dtype is StorageDType {
  return dtype in STORAGE_BYTES;
}

export async function readSafetensorsHeader(file: string): Promise<StoredTensorInfo[]> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new SafetensorsError(`${file}: cannot open (${(err as Error).message})`);
  }
  try {
    const { size } = await handle.stat();
    if (size < 8)
      throw new SafetensorsError(`${file}: truncated: ${size} bytes, the 8-byte header length is missing`);
    const lenBuf = Buffer.alloc(8);
    await handle.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new SafetensorsError(
        `${file}: truncated or corrupt: header length ${headerLen} exceeds the file size ${size}`,
      );
    }
    const headerBuf = Buffer.alloc(headerLen);
    await handle.read(headerBuf, 0, headerLen, 8);
    return parseHeader(file, headerBuf, 8 + headerLen, size);
  } finally {
    await handle.close();
  }
}

/** Check a header against the size of the file it came from; offsets are absolute in the file. */
function parseHeader(file: string, headerBuf: Buffer, dataStart: number, size: number): StoredTensorInfo[] {
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (err) {
    throw new SafetensorsError(`${file}: header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${file}: header must be a JSON object`);
  }
  const dataSize = size - dataStart;
  const tensors: StoredTensorInfo[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const entry = HeaderEntrySchema.safeParse(value);
    if (!entry.success) {
      throw new SafetensorsError(
        `${file}: tensor ${name}: malformed header entry (${entry.error.issues[0]?.message ?? ''})`,
      );
    }
    const {
      dtype,
      shape,
      data_offsets: [begin, end],
    } = entry.data;
    if (!isStorageDType(dtype)) {
      throw new SafetensorsError(
        `${file}: tensor ${name}: dtype ${dtype} is not supported (supported: F32, F16, BF16)`,
      );
    }
    const byteLength = elementCount(shape) * STORAGE_BYTES[dtype];
    if (end < begin || end - begin !== byteLength) {
      throw new SafetensorsError(
        `${file}: tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${shape.join(', ')}] ${dtype} needs ${byteLength}`,
      );
    }
    if (end > dataSize) {
      throw new SafetensorsError(
        `${file}: truncated: tensor ${name} needs data up to byte ${end}, the file holds ${dataSize} bytes of data`,
      );
    }
    tensors.push({ name, file, dtype, shape, offset: dataStart + begin, byteLength });
  }
  return tensors;
}

/** Read one tensor's raw bytes into a fresh, aligned buffer. */
export async function readTensorBytes(info: StoredTensorInfo): Promise<Uint8Array> {
  const handle = await open(info.file, 'r');
  try {
    const out = new Uint8Array(info.byteLength);
    let done = 0;
    while (done < info.byteLength) {
      const { bytesRead } = await handle.read(out, done, info.byteLength - done, info.offset + done);
      if (bytesRead === 0)
        throw new SafetensorsError(`${info.file}: truncated while reading tensor ${info.name}`);
      done += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** Decode a whole safetensors image held in memory (a debug state sent over the wire). */
export function decodeSafetensors(
  bytes: Uint8Array,
  name = 'safetensors buffer',
): Map<string, StoredTensorInfo & { data: Uint8Array }> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8) throw new SafetensorsError(`${name}: truncated: the 8-byte header length is missing`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (8 + headerLen > buf.length)
    throw new SafetensorsError(`${name}: header length ${headerLen} exceeds the size ${buf.length}`);
  const infos = parseHeader(name, buf.subarray(8, 8 + headerLen), 8 + headerLen, buf.length);
  return new Map(
    infos.map((i) => [
      i.name,
      { ...i, data: new Uint8Array(bytes.subarray(i.offset, i.offset + i.byteLength)) },
    ]),
  );
}

/** Write a safetensors file (tests and the reference-checkpoint tooling use it). */
export function encodeSafetensors(
  tensors: Readonly<Record<string, { dtype: StorageDType; shape: readonly number[]; data: Uint8Array }>>,
  metadata: Readonly<Record<string, string>> = { format: 'pt' },
): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    parts.push(t.data);
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), ...parts]);
}
