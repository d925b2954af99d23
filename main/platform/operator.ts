import os from 'node:os';

/** Who minted a code, for the audit log and listings: `<surface>:<login name>` (printable ASCII only). */
export function operatorName(surface: 'cli' | 'desktop'): string {
  let name: string;
  try {
    name = os.userInfo().username;
  } catch {
    name = process.env.USER ?? process.env.USERNAME ?? '';
  }
  const clean = name.replace(/[^\x21-\x7e]/g, '').slice(0, 64);
  return `${surface}:${clean === '' ? 'unknown' : clean}`;
}
