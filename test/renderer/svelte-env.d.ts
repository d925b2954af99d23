// For the root tsconfig (NodeNext, types: node), which type-checks these tests: Svelte's rune globals for the
// renderer's *.svelte.ts stores the tests import, and a shape for *.svelte component imports. svelte-check, with
// renderer/tsconfig.json, checks the components themselves.

declare module '*.svelte' {
  import type { Component } from 'svelte';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const component: Component<any>;
  export default component;
}
