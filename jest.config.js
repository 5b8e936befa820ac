// Jest in ESM mode (@kubernetes/client-node is an ES module). TypeScript is transpiled per file by
// ts-jest; type checking is `npm run typecheck`, so a test run does not pay for it twice.
const tsJest = ['ts-jest', { useESM: true, tsconfig: 'tsconfig.jest.json', diagnostics: false }];

/** @type {import('jest').Config} */
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': tsJest },
  testEnvironment: '<rootDir>/test/support/single-realm-environment.js',
  // The logs of the code under test are kept per test and shown only when it fails.
  setupFiles: ['<rootDir>/test/support/capture-logs.ts'],
};

export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{core,worker,operator,cli}/**/*.test.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/**/*.test.ts'] },
  ],
};
