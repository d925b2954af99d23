/// <reference types="svelte" />
/// <reference types="vite/client" />

// window.palyra is read through lib/api.ts (getPalyra), not through a global declaration, so this file cannot
// conflict with the global type that preload/palyra.d.ts declares for the Electron build.
