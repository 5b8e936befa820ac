// K/V frames over a StreamKv client stream (`--kv-transport grpc`). Frames are written encoded
// (transport.ts passes them through), into buffers reused per link (kv-codec.ts EncodeBuffers):
// the frame's arrays are released as soon as they are encoded.
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import type {
  KvFrame,
  KvHello,
  KvMessage,
  KvStreamSummary,
  RankClient,
} from '../../core/gen/runahead/v1/rank.ts';
import { EncodeBuffers, encodeKvMessage } from './kv-codec.ts';
import { LinkError, type KvFrameWriter } from './kv-frame-writer.ts';

export function grpcFrameWriter(client: RankClient, hello: KvHello): KvFrameWriter {
  let settle: { resolve(s: KvStreamSummary): void; reject(e: Error): void } | undefined;
  const summary = new Promise<KvStreamSummary>((resolve, reject) => (settle = { resolve, reject }));
  summary.catch(() => undefined);
  const call = client.streamKv((err: ServiceError | null, s?: KvStreamSummary) => {
    if (err)
      settle?.reject(
        new LinkError(`KV stream to rank ${hello.toRank} failed: ${err.details || err.message}`),
      );
    else settle?.resolve(s ?? { frames: 0, bytes: 0 });
  });
  call.on('error', () => undefined); // reported through the callback above
  const writer = call as ClientWritableStream<KvMessage | Buffer>;
  const buffers = new EncodeBuffers();
  call.write({ body: { $case: 'hello', value: hello } });
  return {
    ready: null,
    summary,
    write(frame: KvFrame, released, sent) {
      const encoded = encodeKvMessage({ body: { $case: 'frame', value: frame } }, buffers);
      released();
      return writer.write(encoded, () => {
        // grpc-js has copied the message by now (kv-codec.ts EncodeBuffers).
        buffers.give(encoded);
        sent();
      });
    },
    onceDrain(cb) {
      call.once('drain', cb);
    },
    end() {
      call.end();
    },
    cancel() {
      call.cancel();
    },
  };
}
