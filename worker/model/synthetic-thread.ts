// Worker-thread entry of the synthetic generator pool (synthetic.ts): generates the layers it is
// asked for and moves their arrays to the caller without a copy.
import { parentPort } from 'node:worker_threads';
import { syntheticLayer, type SyntheticLayerRequest } from './synthetic.ts';

const port = parentPort;
if (!port) throw new Error('synthetic-thread.ts must run as a worker thread');
port.on('message', (req: SyntheticLayerRequest & { id: number }) => {
  const layer = syntheticLayer(req);
  const buffers = Object.values(layer)
    .filter((a): a is Float32Array | Uint16Array => ArrayBuffer.isView(a))
    .map((a) => a.buffer as ArrayBuffer);
  port.postMessage({ id: req.id, layer }, buffers);
});
