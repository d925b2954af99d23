/** Display helpers. Pure: callers pass `now` in. */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** `123456` → `['123', '456']`: a SAS is read in two groups of three. Anything else is returned as one group. */
export function sasGroups(sas: string): string[] {
  return /^[0-9]{6}$/.test(sas) ? [sas.slice(0, 3), sas.slice(3)] : [sas];
}

/** Hex fingerprint in groups of four for reading aloud; copy buttons copy the raw value. */
export function groupFingerprint(value: string): string {
  return value.replace(/(.{4})(?=.)/g, '$1 ');
}

/**
 * The gateway key pin of QR codes (base64url SHA-256 of the CA's SubjectPublicKeyInfo) as lowercase hex, so every
 * fingerprint the app shows reads the same way (grouped hex). Anything that is not 32 bytes of base64url is returned
 * unchanged.
 */
export function pinAsHex(pin: string): string {
  if (!/^[A-Za-z0-9_-]{43}$/.test(pin)) return pin;
  const binary = atob(pin.replace(/-/g, '+').replace(/_/g, '/') + '=');
  return Array.from(binary, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

/** A remaining time as a countdown: `9:58`, `1:02:03`, `3 d 4 h`. */
export function formatCountdown(remainingMs: number): string {
  const ms = Math.max(0, remainingMs);
  if (ms >= 2 * DAY) {
    const days = Math.floor(ms / DAY);
    return `${days} d ${Math.floor((ms % DAY) / HOUR)} h`;
  }
  const totalSeconds = Math.ceil(ms / SECOND);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const mm = hours > 0 ? String(minutes).padStart(2, '0') : String(minutes);
  const ss = String(seconds).padStart(2, '0');
  return hours > 0 ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`; a time in the future reads `just now`. */
export function formatAgo(atMs: number, now: number): string {
  const ms = now - atMs;
  if (ms < 5 * SECOND) return 'just now';
  if (ms < MINUTE) return `${Math.floor(ms / SECOND)} s ago`;
  if (ms < HOUR) return `${Math.floor(ms / MINUTE)} min ago`;
  if (ms < DAY) return `${Math.floor(ms / HOUR)} h ago`;
  return `${Math.floor(ms / DAY)} d ago`;
}

export function formatDateTime(atMs: number): string {
  return new Date(atMs).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function isoTime(atMs: number): string {
  return new Date(atMs).toISOString();
}

export const KIND_LABEL: Readonly<Record<string, string>> = { desktop: 'Desktop', node: 'Node', cli: 'Command line' };

export function kindLabel(kind: string | null): string {
  return kind === null ? 'Unknown kind' : (KIND_LABEL[kind] ?? kind);
}
