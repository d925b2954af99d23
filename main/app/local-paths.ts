/**
 * Local filesystem paths taken out of a text that leaves the main process (an error message crossing IPC): each
 * absolute path becomes its last component, `failed to read /home/ana/.config/Palyra Desktop/settings.json: …` →
 * `failed to read settings.json: …`, so the renderer (and a screenshot of it) learns which file, not where the user's
 * home, user name or folders are. The full text stays in the main-process log.
 *
 * Recognised: POSIX absolute paths of two or more components (`/a/b`; one component like `/ipc` names no local
 * folder), `~/…`, Windows drive (`C:\…`, `C:/…`) and UNC (`\\server\share\…`) paths, and `file:` URLs; a path starts at
 * the beginning of the text or after a space, quote, bracket, `=`, `,` or `;`, so URLs (`https://host/a/b`,
 * `palyra://pair?…`) and relative paths (`docs/CLI.md`) are left alone. A folder name may hold single spaces when
 * more of the path follows (`Palyra Desktop/…`). Paths the caller knows (an error's `details.path`) are replaced
 * first, exactly, whatever they contain.
 */

/** One path component: no whitespace, quotes, brackets, separators, or the punctuation that ends a path in prose. */
const SEG = String.raw`[^\s'"\x60<>()[\]{}:,;/\\]+`;
/** A directory component, which may contain single spaces (it is followed by another component). */
const DIR = `${SEG}(?: ${SEG})*`;
const START = String.raw`(?<=^|[\s'"\x60(\[{<=,;])`;
const POSIX = String.raw`(?:~|/${DIR})(?:/${DIR})*/${SEG}`;
const WINDOWS_DRIVE = String.raw`[A-Za-z]:[\\/](?:${DIR}[\\/])*${SEG}`;
const WINDOWS_UNC = String.raw`\\\\${SEG}(?:\\${DIR})*\\${SEG}`;
const FILE_URL = String.raw`file:/[^\s'"\x60<>]*`;
const LOCAL_PATH = new RegExp(`${START}(?:${FILE_URL}|${WINDOWS_UNC}|${WINDOWS_DRIVE}|${POSIX})`, 'g');

/** Longest text rewritten; anything longer is cut first (messages are short; this bounds the regex's work). */
const MAX_TEXT_LENGTH = 4096;

/** The last non-empty component of a path or file URL (`settings.json`), `…` when there is none. */
export function lastComponent(localPath: string): string {
  const parts = localPath.split(/[\\/]+/).filter((p) => p !== '' && p !== '~' && !/^file:$/i.test(p));
  return parts.at(-1) ?? '…';
}

function isAbsoluteLocalPath(text: string): boolean {
  return /^(?:\/|~\/|[A-Za-z]:[\\/]|\\\\)/.test(text) && text.length > 1;
}

/** `text` with every local absolute path replaced by its last component (see the module comment). */
export function withoutLocalPaths(text: string, knownPaths: readonly string[] = []): string {
  let out = text.length > MAX_TEXT_LENGTH ? `${text.slice(0, MAX_TEXT_LENGTH)}…` : text;
  const known = [...new Set(knownPaths.filter(isAbsoluteLocalPath))].sort((a, b) => b.length - a.length);
  for (const p of known) out = out.split(p).join(lastComponent(p));
  return out.replace(LOCAL_PATH, (match) => {
    // A sentence's full stop after the path is not part of the file name.
    const trailing = /\.+$/.exec(match)?.[0] ?? '';
    return `${lastComponent(match.slice(0, match.length - trailing.length))}${trailing}`;
  });
}
