/**
 * The window and the desktop chrome around it as pure data: the BrowserWindow options (every web preference that
 * matters for security set explicitly, not left to defaults that have changed between Electron versions), and what
 * the tray, the notifications and the taskbar progress bar show for a given state. No electron import, so the unit
 * tests run under plain Node; electron-main.ts passes these values to Electron unchanged.
 */

import type { EventPayload } from '../ipc/contract.js';

export const WINDOW_TITLE = 'Palyra Desktop';

/** The subset of Electron's `BrowserWindowConstructorOptions` we set; the compiler checks it against the real type where it is used. */
export interface WindowOptions {
  readonly title: string;
  readonly width: number;
  readonly height: number;
  readonly minWidth: number;
  readonly minHeight: number;
  /** Shown on `ready-to-show`, so the user never sees an empty frame. */
  readonly show: boolean;
  readonly backgroundColor: string;
  readonly icon?: string;
  readonly webPreferences: {
    readonly preload: string;
    readonly contextIsolation: true;
    readonly sandbox: true;
    readonly nodeIntegration: false;
    readonly nodeIntegrationInWorker: false;
    readonly nodeIntegrationInSubFrames: false;
    readonly webSecurity: true;
    readonly allowRunningInsecureContent: false;
    readonly experimentalFeatures: false;
    readonly webviewTag: false;
    readonly spellcheck: false;
    readonly navigateOnDragDrop: false;
    readonly safeDialogs: true;
    /** Middle-click would open links in new windows (denied anyway by the window-open handler). */
    readonly disableBlinkFeatures: 'Auxclick';
  };
}

export function browserWindowOptions(preloadPath: string, iconPath?: string): WindowOptions {
  return {
    title: WINDOW_TITLE,
    width: 1120,
    height: 780,
    minWidth: 760,
    minHeight: 540,
    show: false,
    backgroundColor: '#10151c',
    ...(iconPath === undefined ? {} : { icon: iconPath }),
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      disableBlinkFeatures: 'Auxclick',
    },
  };
}

// --- tray ----------------------------------------------------------------------------------------------------------

type GatewayEvent = EventPayload<'gateway.event'>;
type PairingProgress = EventPayload<'device.pairing'>['progress'];
type RequestView = Extract<GatewayEvent, { type: 'request.created' }>['request'];

/** The ids of the requests waiting for the operator, after one gateway event. Returns the same set when nothing changed. */
export function pendingAfterEvent(pending: ReadonlySet<string>, event: GatewayEvent): ReadonlySet<string> {
  if (event.type !== 'request.created' && event.type !== 'request.updated') return pending;
  const id = event.request.request_id;
  const isPending = event.request.state === 'pending_approval';
  if (isPending === pending.has(id)) return pending;
  const next = new Set(pending);
  if (isPending) next.add(id);
  else next.delete(id);
  return next;
}

/** The pending set as a `gateway.listRequests` answer describes it (at launch and after the gateway restarts). */
export function pendingFromList(requests: readonly Pick<RequestView, 'request_id' | 'state'>[]): ReadonlySet<string> {
  return new Set(requests.filter((r) => r.state === 'pending_approval').map((r) => r.request_id));
}

function requestsPhrase(count: number): string {
  return count === 1 ? '1 pairing request' : `${count} pairing requests`;
}

export function trayTooltip(pendingCount: number): string {
  return pendingCount === 0 ? WINDOW_TITLE : `${WINDOW_TITLE}: ${requestsPhrase(pendingCount)} waiting`;
}

export function trayRequestsLabel(pendingCount: number): string {
  return pendingCount === 0 ? 'No pairing requests' : `Review ${requestsPhrase(pendingCount)}…`;
}

// --- notifications -------------------------------------------------------------------------------------------------

export interface RequestNotification {
  readonly title: string;
  readonly body: string;
  readonly requestId: string;
}

/**
 * A native notification for a request that has just arrived, or null. It names the kind of device only: the SAS is
 * compared inside the app, and nothing secret ever goes to the notification centre (which may show on a lock screen).
 */
export function requestNotification(event: GatewayEvent): RequestNotification | null {
  if (event.type !== 'request.created' || event.request.state !== 'pending_approval') return null;
  const kind = event.request.client_kind === 'cli' ? 'command-line' : event.request.client_kind;
  return {
    title: 'Pairing request',
    body: `A ${kind} device asks to pair with your gateway. Open Palyra Desktop to compare the code and approve or reject it.`,
    requestId: event.request.request_id,
  };
}

// --- taskbar progress ----------------------------------------------------------------------------------------------

/** Electron's `setProgressBar` values: above 1 is indeterminate, below 0 removes the bar. */
export const PROGRESS_INDETERMINATE = 2;
export const PROGRESS_NONE = -1;

/** While the device waits for the operator the bar spins; any outcome removes it; other steps leave it as it is (null). */
export function progressBarValue(progress: PairingProgress): number | null {
  switch (progress.type) {
    case 'awaiting_approval':
      return PROGRESS_INDETERMINATE;
    case 'paired':
    case 'rejected':
    case 'expired':
    case 'failed':
      return PROGRESS_NONE;
    case 'connecting':
    case 'verifying_gateway':
    case 'reconnecting':
      return null;
  }
}
