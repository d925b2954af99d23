import './styles/app.css';
import { mount } from 'svelte';
import App from './App.svelte';
import { getPalyra, type PalyraApi } from './lib/api.js';
import LinkProblem from './LinkProblem.svelte';
import Unavailable from './Unavailable.svelte';

/** What main.ts needs from renderer/src/bridge/ws-bridge.ts (owned by the browser-mode host). */
interface BridgeModule {
  /** Installs window.palyra, or returns `{problem}` when the browser-mode link cannot open the app. */
  installWebSocketBridge?: () => unknown;
}

type Problem = 'link_used' | 'link_invalid' | 'no_session';

function problemOf(value: unknown): Problem | null {
  const problem = typeof value === 'object' && value !== null ? (value as { problem?: unknown }).problem : undefined;
  return problem === 'link_used' || problem === 'link_invalid' || problem === 'no_session' ? problem : null;
}

// In Electron, preload has installed window.palyra before this script runs. In browser mode the WebSocket bridge
// installs it. It is looked up with import.meta.glob so the build still works before the bridge file exists.
const bridges = import.meta.glob<BridgeModule>('./bridge/ws-bridge.ts');

async function connect(): Promise<PalyraApi | string | { problem: Problem }> {
  const existing = getPalyra();
  if (existing !== undefined) return existing;
  const load = bridges['./bridge/ws-bridge.ts'];
  if (load === undefined) return 'This build has no browser bridge, and no preload script provided the API.';
  try {
    const bridge = await load();
    if (getPalyra() === undefined && typeof bridge.installWebSocketBridge === 'function') {
      const problem = problemOf(await bridge.installWebSocketBridge());
      if (problem !== null) return { problem };
    }
  } catch (error) {
    return `The browser bridge failed to start: ${error instanceof Error ? error.message : String(error)}`;
  }
  return getPalyra() ?? 'The browser bridge did not install the API.';
}

const target = document.getElementById('app');
if (target === null) throw new Error('index.html has no #app element');

void connect().then((api) => {
  if (typeof api === 'string') mount(Unavailable, { target, props: { reason: api } });
  else if ('problem' in api) mount(LinkProblem, { target, props: { problem: api.problem } });
  else mount(App, { target, props: { api } });
});
