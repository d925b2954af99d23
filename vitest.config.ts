import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          include: [
            'test/unit/**/*.test.ts',
            'test/integration/**/*.test.ts',
            'test/vectors/**/*.test.ts',
            'test/lint/**/*.test.ts',
            // Skips with a message where the Electron binary is absent (as here); runs where it exists.
            'test/electron/**/*.test.ts',
          ],
          environment: 'node',
          pool: 'forks',
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        // Svelte component tests: compiled by the Svelte plugin, run in happy-dom against a fake window.palyra.
        plugins: [svelte({ compilerOptions: { runes: true } }), svelteTesting()],
        test: {
          name: 'renderer',
          include: ['test/renderer/**/*.test.ts'],
          environment: 'happy-dom',
          testTimeout: 15_000,
        },
      },
      {
        // End to end: real browser-mode app processes driven in headless Chromium (test/helpers/browser.ts). One file
        // at a time and after the other projects, so two Chromiums never share the 2 cores with other tests.
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
