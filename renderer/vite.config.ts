// Build configuration, not renderer runtime code: it runs in Node when Vite starts, so the renderer's import
// boundary (svelte, jsqr, qrcode, main/ipc) does not apply to it.
/* eslint-disable palyra/boundaries */
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

const rendererRoot = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: rendererRoot,
  // Relative asset URLs, so one build works under app://palyra/ and http://127.0.0.1:PORT/ alike.
  base: './',
  plugins: [svelte({ compilerOptions: { runes: true } })],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    // The CSP is script-src 'self': no inline scripts, so no module-preload polyfill snippet either.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: true,
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1', strictPort: false },
  preview: { host: '127.0.0.1' },
});
