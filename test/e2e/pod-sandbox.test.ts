// The translation of a container's view for a local process (test/support/pod-sandbox.ts).
import { describe, expect, it } from '@jest/globals';
import {
  expandVars,
  insufficient,
  localPath,
  localize,
  logTail,
  podRequests,
  quantity,
  type Mount,
  type PodNetwork,
} from '../support/pod-sandbox.ts';

const mounts: Mount[] = [
  { containerPath: '/tmp', localPath: '/agent/pod/volumes/tmp' },
  { containerPath: '/models', localPath: '/srv/models' },
  { containerPath: '/etc/runahead/prompt', localPath: '/agent/pod/volumes/prompt' },
  { containerPath: '/etc/runahead/prompt/nested/', localPath: '/agent/pod/volumes/nested' },
  { containerPath: '/dev/termination-log', localPath: '/agent/pod/termination-log' },
];

const net: PodNetwork = {
  podIP: '127.100.0.7',
  clusterDomain: 'cluster.local',
  resolvePod: (hostname, subdomain, namespace) =>
    subdomain === 'job-ranks' && namespace === 'default' ? `127.100.0.${hostname.length}` : undefined,
};

describe('expandVars', () => {
  const vars = new Map([
    ['A', 'x'],
    ['B', '$(A)'],
  ]);
  it.each([
    ['$(A)/y', 'x/y'],
    ['$(B)', '$(A)'],
    ['$$(A)', '$(A)'],
    ['$(MISSING)', '$(MISSING)'],
    ['$(A', '$(A'],
    ['a$b', 'a$b'],
    ['$$', '$'],
  ])('%s → %s', (input, output) => {
    expect(expandVars(input, vars)).toBe(output);
  });
});

describe('localPath', () => {
  it.each([
    ['/models/llama3-tiny', '/srv/models/llama3-tiny'],
    ['/models', '/srv/models'],
    ['/modelsx/a', '/modelsx/a'],
    ['/etc/runahead/prompt/prompt.txt', '/agent/pod/volumes/prompt/prompt.txt'],
    ['/etc/runahead/prompt/nested/x', '/agent/pod/volumes/nested/x'],
    ['/dev/termination-log', '/agent/pod/termination-log'],
    ['/usr/bin/node', '/usr/bin/node'],
    ['relative/models', 'relative/models'],
  ])('%s → %s', (input, output) => {
    expect(localPath(input, mounts)).toBe(output);
  });
});

describe('localize', () => {
  it.each([
    ['0.0.0.0:50051', '127.100.0.7:50051'],
    ['[::]:8080', '127.100.0.7:8080'],
    [':9000', '127.100.0.7:9000'],
    ['/tmp', '/agent/pod/volumes/tmp'],
    ['--prompt-file=/etc/runahead/prompt/prompt.txt', '--prompt-file=/agent/pod/volumes/prompt/prompt.txt'],
    [
      'job-0.job-ranks.default.svc.cluster.local:50051,job-10.job-ranks.default.svc.cluster.local:50051',
      '127.100.0.5:50051,127.100.0.6:50051',
    ],
    ['http://job-1.job-ranks.default.svc.cluster.local/x', 'http://127.100.0.5/x'],
    // Names cluster DNS would not answer stay as they are (their lookup fails, as it would there).
    ['job-0.other.default.svc.cluster.local:1', 'job-0.other.default.svc.cluster.local:1'],
    ['a.job-0.job-ranks.default.svc.cluster.local', 'a.job-0.job-ranks.default.svc.cluster.local'],
    ['job-0.job-ranks.default.svc.cluster.localdomain', 'job-0.job-ranks.default.svc.cluster.localdomain'],
    ['spec.model.checkpoint.path', 'spec.model.checkpoint.path'],
    ['1.0.0.0:1', '1.0.0.0:1'],
  ])('%s → %s', (input, output) => {
    expect(localize(input, mounts, net)).toBe(output);
  });
});

describe('resources', () => {
  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1Gi', 2 ** 30],
    ['1G', 1e9],
    ['128974848', 128974848],
    ['129e6', 129e6],
    ['1.5Ki', 1536],
  ])('quantity %s = %d', (q, n) => {
    expect(quantity(q)).toBeCloseTo(n, 9);
  });

  it('refuses what is not a quantity', () => {
    expect(() => quantity('1 GB')).toThrow(/not a quantity/);
  });

  it('sums the containers’ requests and fits them in what is free', () => {
    const requests = podRequests({
      spec: {
        containers: [
          { name: 'a', resources: { requests: { cpu: '500m', 'nvidia.com/gpu': '1' } } },
          { name: 'b', resources: { requests: { cpu: '1' } } },
        ],
      },
    });
    expect([...requests]).toEqual([
      ['pods', 1],
      ['cpu', 1.5],
      ['nvidia.com/gpu', 1],
    ]);
    const allocatable = new Map([
      ['cpu', 2],
      ['nvidia.com/gpu', 8],
      ['pods', 110],
    ]);
    expect(insufficient(requests, allocatable, new Map([['cpu', 0.5]]))).toBeNull();
    expect(insufficient(requests, allocatable, new Map([['cpu', 0.6]]))).toBe('cpu');
    expect(insufficient(requests, allocatable, new Map([['nvidia.com/gpu', 8]]))).toBe('nvidia.com/gpu');
  });
});

describe('logTail (FallbackToLogsOnError)', () => {
  it('keeps the last 80 lines', () => {
    const log = Array.from({ length: 100 }, (_, i) => `l${i}`).join('\n') + '\n';
    const tail = logTail(Buffer.from(log));
    expect(tail.split('\n').filter(Boolean)).toEqual(Array.from({ length: 80 }, (_, i) => `l${i + 20}`));
  });

  it('and at most the last 2048 bytes', () => {
    const log = Buffer.from('x'.repeat(5000));
    expect(logTail(log)).toBe('x'.repeat(2048));
  });
});
