// CRC-32 (IEEE 802.3, zlib's polynomial: the wire format's `crc32` field) of K/V payloads. Every
// byte of K/V is checksummed twice, by the sender and by the receiver, on the rank's main thread:
// zlib's crc32 ran at 2.4 GB/s on the device host and took more of the link's CPU than any copy
// (bench/results/link-h200-sweep.md). @node-rs/crc32 (crc32fast: PCLMULQDQ folding) computes the
// same value 2–3× faster (12.5 against 5.4 GB/s on the development VM); it ships prebuilt binaries
// per platform, and where none loads zlib's is used, so both ends always agree.
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

type Crc32 = (data: Uint8Array, initial?: number) => number;

function fastest(): { crc32: Crc32; implementation: string } {
  try {
    const native = createRequire(import.meta.url)('@node-rs/crc32') as { crc32: Crc32 };
    if (native.crc32(Buffer.from('123456789')) === 0xcbf43926)
      return { crc32: native.crc32, implementation: '@node-rs/crc32' };
  } catch {
    // no prebuilt binary for this platform: zlib's below
  }
  return { crc32: (data, initial) => zlibCrc32(data, initial), implementation: 'node:zlib' };
}

const chosen = fastest();

/** CRC-32 of `data`, continuing from `initial` (the CRC of what came before it). */
export const crc32: Crc32 = chosen.crc32;
/** Which implementation crc32 is, for reports. */
export const crc32Implementation = chosen.implementation;
