/**
 * The Electron main process: a thin shell that hands every decision to pure modules (electron-security.ts,
 * electron-window.ts) and every piece of work to DesktopServices. What it wires:
 *
 * - one instance per user (the lock lives in userData, `<config>/Palyra Desktop`, the CLI's directory too);
 * - the renderer from dist/renderer on the privileged scheme `app://palyra`, every response with the CSP;
 * - a sandboxed, context-isolated window with a bundled preload; no navigation, no new windows, no webviews, and a
 *   permission allowlist of exactly "camera for app://palyra";
 * - `ipcMain.handle('palyra:<channel>')` for every contract channel: the sender check runs first (main frame of our
 *   window on our origin), then the IpcRouter validates and dispatches;
 * - every services event to the renderer on `palyra:event`; the tray's pending-request count, a notification for
 *   a new request and the taskbar progress while this device waits for approval, all from the same events;
 * - `palyra://pair?…` deep links (argv, second instance, macOS open-url) handed to the renderer, which asks first;
 * - the hosted gateway through DesktopServices, disposed on quit before the process exits.
 *
 * Cannot run here (no Electron binary): covered by test/electron/app.e2e.test.ts where the binary exists.
 */

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, dialog, ipcMain, Menu, nativeImage, Notification, protocol, session, shell, Tray } from 'electron';
import type { IpcMainInvokeEvent, MenuItemConstructorOptions, WebContents } from 'electron';
import { chooseKeychain } from '../platform/keychain-choice.js';
import { defaultUserDataDir } from '../platform/paths.js';
import { toPalyraError } from '../core/errors.js';
import { CHANNEL_NAMES } from '../ipc/contract.js';
import type { ChannelName, ChannelResult, EventName, EventPayload, IpcEnvelope } from '../ipc/contract.js';
import { IPC_EVENT_CHANNEL, ipcChannelOf } from '../ipc/electron-ipc.js';
import {
  APP_ENTRY_URL,
  APP_SCHEME,
  deepLinkFromArgv,
  deepLinkFromUrl,
  isAllowedNavigation,
  isAppOrigin,
  isTrustedSender,
  originOf,
  permissionDecision,
  rendererFileFor,
  RESPONSE_HEADERS,
} from './electron-security.js';
import { browserWindowOptions, pendingAfterEvent, pendingFromList, progressBarValue, requestNotification, trayRequestsLabel, trayTooltip, WINDOW_TITLE } from './electron-window.js';
import { IpcRouter } from './ipc-router.js';
import { readRendererFile } from './renderer-policy.js';
import type { IpcLog } from './ipc-router.js';
import { LOG_DIR_NAME, openFileLogger } from './logger.js';
import type { Logger } from './logger.js';
import { DesktopServices } from './services.js';

const DEEP_LINK_SCHEME = 'palyra';
/** If disposing the services hangs (a stuck socket), quit anyway after this long rather than never. */
const SHUTDOWN_GRACE_MS = 10_000;

// dist/main/app/electron-main.js → dist/
const distDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rendererDir = path.join(distDir, 'renderer');
const preloadPath = path.join(distDir, 'preload', 'preload.cjs');
const iconPath = app.isPackaged ? path.join(process.resourcesPath, 'icon.png') : path.resolve(distDir, '..', 'resources', 'icon.png');

// Before `ready`, synchronously (ESM entry: nothing may be awaited before this point). No `corsEnabled`: it would let
// other origins read app:// responses; the renderer only loads its own files, same-origin.
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
// Every renderer sandboxed, whatever a future window's options say.
app.enableSandbox();

/** PALYRA_USER_DATA_DIR (absolute) isolates a test run; otherwise the directory the CLI uses too. */
function userDataDir(): string {
  const fromEnv = process.env.PALYRA_USER_DATA_DIR;
  return fromEnv !== undefined && path.isAbsolute(fromEnv) ? fromEnv : defaultUserDataDir();
}

app.setPath('userData', userDataDir());

if (!app.requestSingleInstanceLock()) {
  // The first instance receives our argv in its 'second-instance' event (a deep link included).
  app.quit();
} else {
  runFirstInstance();
}

function runFirstInstance(): void {
  const log = openFileLogger({
    dir: path.join(app.getPath('userData'), LOG_DIR_NAME),
    ...(app.isPackaged ? {} : { mirror: (line: string) => process.stderr.write(line) }),
  });
  const ipcLog: IpcLog = (line) => {
    const { event, ...fields } = line;
    log.info(typeof event === 'string' ? event : 'app.log', fields);
  };
  log.info('app.starting', { version: app.getVersion(), electron: process.versions.electron, platform: process.platform, packaged: app.isPackaged });

  let services: DesktopServices | null = null;
  let mainWindow: BrowserWindow | null = null;
  let tray: Tray | null = null;
  let pending: ReadonlySet<string> = new Set();
  let rendererReady = false;
  const queuedDeepLinks: string[] = [];
  /** Notifications are kept referenced until dismissed, or their click handler may be collected. */
  const notifications = new Set<Notification>();
  let shutdown: 'running' | 'disposing' | 'done' = 'running';

  // --- deep links ----------------------------------------------------------------------------------------------

  const deliverDeepLink = (uri: string | null): void => {
    if (uri === null) return;
    log.info('app.deep_link');
    if (services === null || !rendererReady) {
      queuedDeepLinks.push(uri);
      return;
    }
    services.deepLink(uri);
  };

  const registerProtocolClient = (): void => {
    // In development the executable is electron itself, which needs our entry script as its argument.
    const ok = process.defaultApp && process.argv[1] !== undefined
      ? app.setAsDefaultProtocolClient(DEEP_LINK_SCHEME, process.execPath, [path.resolve(process.argv[1])])
      : app.setAsDefaultProtocolClient(DEEP_LINK_SCHEME);
    log.info('app.protocol_client', { registered: ok });
  };

  app.on('will-finish-launching', () => {
    app.on('open-url', (event, url) => {
      event.preventDefault();
      deliverDeepLink(deepLinkFromUrl(url));
    });
  });

  app.on('second-instance', (_event, argv) => {
    showWindow();
    deliverDeepLink(deepLinkFromArgv(argv));
  });

  // --- every web contents: no navigation away, no new windows, no webviews ------------------------------------

  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-navigate', (event, url) => {
      if (!isAllowedNavigation(url)) {
        event.preventDefault();
        log.warn('app.navigation_blocked', { origin: originOf(url) });
      }
    });
    contents.on('will-frame-navigate', (event) => {
      if (!isAllowedNavigation(event.url)) {
        event.preventDefault();
        log.warn('app.navigation_blocked', { origin: originOf(event.url), main_frame: event.isMainFrame });
      }
    });
    contents.on('will-redirect', (event, url) => {
      if (!isAllowedNavigation(url)) {
        event.preventDefault();
        log.warn('app.redirect_blocked', { origin: originOf(url) });
      }
    });
    contents.on('will-attach-webview', (event) => {
      event.preventDefault();
      log.warn('app.webview_blocked');
    });
    contents.setWindowOpenHandler(({ url }) => {
      log.warn('app.window_open_blocked', { origin: originOf(url) });
      return { action: 'deny' };
    });
  });

  // --- the window ------------------------------------------------------------------------------------------------

  const sendEvent = <E extends EventName>(event: E, payload: EventPayload<E>): void => {
    const contents = liveContents();
    // Events carry SAS codes and device state: only ever to our own origin.
    if (contents === null || !isAppOrigin(contents.getURL())) return;
    contents.send(IPC_EVENT_CHANNEL, { event, payload });
  };

  function liveContents(): WebContents | null {
    if (mainWindow === null || mainWindow.isDestroyed() || mainWindow.webContents.isDestroyed()) return null;
    return mainWindow.webContents;
  }

  function showWindow(): void {
    if (mainWindow === null || mainWindow.isDestroyed()) {
      if (app.isReady() && services !== null) createWindow();
      return;
    }
    if (mainWindow.isMinimized()) mainWindow.restore();
    mainWindow.show();
    mainWindow.focus();
  }

  function createWindow(): void {
    rendererReady = false;
    const win = new BrowserWindow(browserWindowOptions(preloadPath, iconPath));
    mainWindow = win;
    win.once('ready-to-show', () => {
      win.show();
    });
    win.webContents.on('did-finish-load', () => {
      rendererReady = true;
      for (const uri of queuedDeepLinks.splice(0)) services?.deepLink(uri);
    });
    win.webContents.on('render-process-gone', (_event, details) => {
      log.error('app.renderer_gone', { reason: details.reason, exit_code: details.exitCode });
    });
    win.on('closed', () => {
      if (mainWindow === win) mainWindow = null;
      rendererReady = false;
    });
    void win.loadURL(APP_ENTRY_URL).catch((error: unknown) => {
      log.error('app.load_failed', { message: toPalyraError(error).message });
    });
  }

  /** Shows the window on the approval view (notification click, tray item); the renderer routes on the event. */
  function openRequests(requestId: string | null): void {
    showWindow();
    const send = (): void => {
      services?.openRequests(requestId);
    };
    if (rendererReady) send();
    else mainWindow?.webContents.once('did-finish-load', send);
  }

  // --- tray, notifications, progress ----------------------------------------------------------------------------

  function updateTray(): void {
    if (tray === null) return;
    tray.setToolTip(trayTooltip(pending.size));
    const template: MenuItemConstructorOptions[] = [
      { label: `Open ${WINDOW_TITLE}`, click: () => { showWindow(); } },
      { label: trayRequestsLabel(pending.size), enabled: pending.size > 0, click: () => { openRequests(null); } },
      { type: 'separator' },
      { label: 'Quit', click: () => { app.quit(); } },
    ];
    tray.setContextMenu(Menu.buildFromTemplate(template));
  }

  function createTray(): void {
    try {
      const image = nativeImage.createFromPath(iconPath);
      tray = new Tray(image.isEmpty() ? image : image.resize({ width: 18, height: 18 }));
      tray.on('click', () => { showWindow(); });
      updateTray();
    } catch (error) {
      // Some Linux desktops have no status area; the app works without a tray.
      log.warn('app.tray_unavailable', { message: toPalyraError(error).message });
      tray = null;
    }
  }

  function notifyRequest(event: EventPayload<'gateway.event'>): void {
    const content = requestNotification(event);
    if (content === null || !Notification.isSupported()) return;
    const notification = new Notification({ title: content.title, body: content.body });
    notifications.add(notification);
    notification.on('click', () => {
      notifications.delete(notification);
      openRequests(content.requestId);
    });
    notification.on('close', () => notifications.delete(notification));
    notification.show();
  }

  async function refreshPending(router: IpcRouter): Promise<void> {
    const reply = await router.handle('gateway.listRequests', { state: 'pending_approval' });
    if (!reply.ok) return;
    // The router checked the result against the channel's schema.
    pending = pendingFromList((reply.result as ChannelResult<'gateway.listRequests'>).requests);
    updateTray();
  }

  function onServicesEvent(router: IpcRouter, event: EventName, payload: unknown): void {
    switch (event) {
      case 'gateway.event': {
        const gatewayEvent = payload as EventPayload<'gateway.event'>;
        const next = pendingAfterEvent(pending, gatewayEvent);
        if (next !== pending) {
          pending = next;
          updateTray();
        }
        notifyRequest(gatewayEvent);
        break;
      }
      case 'gateway.status':
        // The gateway (re)started or stopped: recount from its state rather than trusting our tally.
        void refreshPending(router);
        break;
      case 'device.pairing': {
        const value = progressBarValue((payload as EventPayload<'device.pairing'>).progress);
        if (value !== null) mainWindow?.setProgressBar(value);
        break;
      }
      default:
        break;
    }
    sendEvent(event, payload as EventPayload<typeof event>);
  }

  // --- IPC -----------------------------------------------------------------------------------------------------

  function wireIpc(router: IpcRouter): void {
    for (const channel of CHANNEL_NAMES) {
      ipcMain.handle(ipcChannelOf(channel), async (event: IpcMainInvokeEvent, args: unknown): Promise<IpcEnvelope<unknown>> => {
        if (!trustedSender(event)) {
          log.warn('ipc.sender_refused', { channel, origin: originOf(event.senderFrame?.url ?? '') });
          return { ok: false, error: { code: 'permission_denied', message: `${channel}: the caller is not the Palyra window` } };
        }
        return router.handle(channel satisfies ChannelName, args);
      });
    }
  }

  function trustedSender(event: IpcMainInvokeEvent): boolean {
    const frame = event.senderFrame;
    return isTrustedSender({
      frameUrl: frame?.url ?? null,
      isMainFrame: frame !== null && frame.parent === null,
      senderId: event.sender.id,
      windowId: liveContents()?.id ?? null,
    });
  }

  // --- the renderer's files --------------------------------------------------------------------------------------

  async function serveRenderer(request: Request): Promise<Response> {
    const target = rendererFileFor(request.url, rendererDir);
    if (target.kind === 'not_found' || request.method !== 'GET') return new Response('not found', { status: 404, headers: RESPONSE_HEADERS });
    const body = await readRendererFile(target);
    if (body === null) return new Response('not found', { status: 404, headers: RESPONSE_HEADERS });
    return new Response(body, { status: 200, headers: { ...RESPONSE_HEADERS, 'Content-Type': target.contentType } });
  }

  function hardenSession(): void {
    const ses = session.defaultSession;
    ses.setPermissionRequestHandler((_contents, permission, callback, details) => {
      const granted = permissionDecision(permission, originOf(details.requestingUrl), {
        requestingUrl: details.requestingUrl,
        isMainFrame: details.isMainFrame,
        mediaTypes: 'mediaTypes' in details ? (details.mediaTypes ?? []) : undefined,
      });
      if (!granted) log.warn('app.permission_denied', { permission, origin: originOf(details.requestingUrl) });
      callback(granted);
    });
    ses.setPermissionCheckHandler((_contents, permission, requestingOrigin, details) =>
      permissionDecision(permission, requestingOrigin, { requestingUrl: details.requestingUrl, isMainFrame: details.isMainFrame, mediaType: details.mediaType }),
    );
    ses.setDevicePermissionHandler(() => false);
    ses.protocol.handle(APP_SCHEME, serveRenderer);
  }

  // --- lifecycle ---------------------------------------------------------------------------------------------------

  async function confirmOpenUrl(url: string): Promise<boolean> {
    const parsed = URL.canParse(url) ? new URL(url) : null;
    if (parsed === null || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) return false;
    const options = {
      type: 'question' as const,
      buttons: ['Open in browser', 'Cancel'],
      defaultId: 1,
      cancelId: 1,
      message: 'Your gateway asks this device to open a link.',
      detail: parsed.href,
    };
    const win = mainWindow;
    const { response } = win === null || win.isDestroyed() ? await dialog.showMessageBox(options) : await dialog.showMessageBox(win, options);
    if (response !== 0) return false;
    await shell.openExternal(parsed.href);
    return true;
  }

  function showNotification(title: string, body: string): void {
    if (Notification.isSupported()) new Notification({ title, body }).show();
  }

  async function start(): Promise<void> {
    await app.whenReady();
    // Packaged: no View menu (reload, devtools); macOS keeps the menus its shortcuts live in. Development keeps the default.
    if (app.isPackaged) {
      Menu.setApplicationMenu(process.platform === 'darwin' ? Menu.buildFromTemplate([{ role: 'appMenu' }, { role: 'editMenu' }, { role: 'windowMenu' }]) : null);
    }
    hardenSession();
    registerProtocolClient();
    const { keychain } = await chooseKeychain(process.env);
    const opened = await DesktopServices.open({
      userDataDir: app.getPath('userData'),
      keychain: keychain === null ? 'file' : 'os',
      osKeychain: keychain,
      mode: 'electron',
      confirmOpenUrl,
      notify: showNotification,
      log: ipcLog,
    });
    services = opened;
    const router = new IpcRouter(opened.handlers, { log: ipcLog });
    wireIpc(router);
    opened.onEvent((event, payload) => {
      onServicesEvent(router, event, payload);
    });
    createTray();
    await refreshPending(router);
    createWindow();
    deliverDeepLink(deepLinkFromArgv(process.argv));
    log.info('app.started');
  }

  app.on('activate', () => {
    showWindow();
  });

  app.on('window-all-closed', () => {
    // With a hosted gateway and a tray, keep serving in the background; otherwise (except on macOS) quit.
    if (tray !== null && (services?.gateway ?? null) !== null) return;
    if (process.platform !== 'darwin') app.quit();
  });

  app.on('before-quit', (event) => {
    if (shutdown === 'done') return;
    event.preventDefault();
    if (shutdown === 'disposing') return;
    shutdown = 'disposing';
    log.info('app.quitting');
    const forced = setTimeout(() => {
      log.error('app.shutdown_timeout');
      app.exit(0);
    }, SHUTDOWN_GRACE_MS);
    void (async () => {
      try {
        await services?.dispose();
      } catch (error) {
        log.error('app.dispose_failed', { code: toPalyraError(error).code });
      }
      tray?.destroy();
      log.info('app.stopped');
      await closeLogger(log);
      clearTimeout(forced);
      shutdown = 'done';
      app.quit();
    })();
  });

  start().catch(async (error: unknown) => {
    const e = toPalyraError(error);
    log.error('app.start_failed', { code: e.code, message: e.message });
    dialog.showErrorBox(`${WINDOW_TITLE} could not start`, `${e.message}\n\n(${e.code})`);
    shutdown = 'done';
    await closeLogger(log);
    app.exit(1);
  });
}

async function closeLogger(log: Logger): Promise<void> {
  try {
    await log.close();
  } catch {
    // Nothing left to tell.
  }
}
