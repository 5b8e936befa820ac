// The errors that mean the configuration is wrong — a flag, a model path, a split — so running
// the same thing again cannot help: exit code 2, and a rank pod's group is not restarted. By class
// name, because errors raised on the engine's thread come back as EngineError carrying the
// original class's name (worker/runtime/engine-client.ts), and so that the command-line entry point
// can classify them without importing the modules (and native libraries) that define them.
// cli/worker-exit.test.ts holds the names against the classes.
export const CONFIG_ERROR_NAMES: ReadonlySet<string> = new Set([
  'UsageError',
  'FlagsError',
  'WorkerConfigError',
  'PartitionError',
  'CheckpointError',
  'ModelConfigError',
  'SafetensorsError',
  'TokenizerError',
  'ExecutionProviderError',
]);
