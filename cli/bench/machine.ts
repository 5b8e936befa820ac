import { cpus, totalmem, availableParallelism, platform, arch } from 'node:os';

/** What a benchmark report needs to say about where it ran. */
export function machineDescription(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const gib = (totalmem() / 2 ** 30).toFixed(0);
  return `${cpu}, ${availableParallelism()} cores, ${gib} GiB, ${platform()}/${arch()}, Node.js ${process.version}`;
}
