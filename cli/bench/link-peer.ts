// Entry of the two rank processes `runahead bench link` forks: `link-peer sender` or `link-peer
// receiver`. Each answers the orchestrator's requests (link-ipc.ts) until it disconnects.
import type { PeerRequest } from './link-ipc.ts';
import { servePeer } from './link-ipc.ts';
import { LinkReceiver } from './link-receiver.ts';
import { LinkSender } from './link-sender.ts';

function senderHandler(): (r: PeerRequest) => Promise<unknown> {
  let sender: LinkSender | null = null;
  const ready = () => {
    if (!sender) throw new Error('the sender has no K/V yet (init first)');
    return sender;
  };
  return async (r) => {
    switch (r.op) {
      case 'init':
        sender = new LinkSender(r.shape);
        return null;
      case 'checksum':
        return ready().checksum();
      case 'connect':
        await ready().connect(r.path, r.port, r.settings, r.tls, r.timeoutMs);
        return null;
      case 'send':
        return ready().send(r.trial);
      case 'local':
        return ready().local(r.path, r.frameBytes);
      default:
        throw new Error(`the sender does not do ${r.op}`);
    }
  };
}

function receiverHandler(): (r: PeerRequest) => Promise<unknown> {
  let receiver: LinkReceiver | null = null;
  const ready = () => {
    if (!receiver) throw new Error('the receiver has no shape yet (init first)');
    return receiver;
  };
  return async (r) => {
    switch (r.op) {
      case 'init':
        receiver = new LinkReceiver(r.shape);
        return null;
      case 'listen':
        return ready().listen(r.path, r.settings, r.tls);
      case 'arm':
        ready().arm(r.trial);
        return null;
      case 'collect':
        return ready().collect(r.trial, r.timeoutMs);
      default:
        throw new Error(`the receiver does not do ${r.op}`);
    }
  };
}

const role = process.argv[2];
if (role !== 'sender' && role !== 'receiver') {
  process.stderr.write(`link-peer: the role must be sender or receiver, not ${role ?? 'none'}\n`);
  process.exit(2);
}
servePeer(role === 'sender' ? senderHandler() : receiverHandler());
