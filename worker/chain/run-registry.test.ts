import { describe, expect, it } from '@jest/globals';
import { RunRegistry } from './run-registry.ts';

const timeout = (id: string) => () => new Error(`no run ${id}`);

describe('RunRegistry', () => {
  it('finds a registered run at once, and forgets a deleted one', async () => {
    const runs = new RunRegistry<string>();
    runs.add('a', 'run a');
    expect(await runs.waitFor('a', 10, timeout('a'))).toBe('run a');
    runs.delete('a');
    expect(runs.get('a')).toBeUndefined();
    expect([...runs.values()]).toEqual([]);
  });

  it('wakes every lookup that waits for a run once it is added', async () => {
    const runs = new RunRegistry<string>();
    const first = runs.waitFor('b', 1000, timeout('b'));
    const second = runs.waitFor('b', 1000, timeout('b'));
    runs.add('other', 'run other');
    runs.add('b', 'run b');
    expect(await Promise.all([first, second])).toEqual(['run b', 'run b']);
  });

  it('fails a lookup with the given error when the run does not come in time', async () => {
    const runs = new RunRegistry<string>();
    const started = Date.now();
    await expect(runs.waitFor('c', 50, timeout('c'))).rejects.toThrow('no run c');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    // A run added after the deadline is still found by the next lookup.
    runs.add('c', 'run c');
    expect(await runs.waitFor('c', 50, timeout('c'))).toBe('run c');
  });
});
