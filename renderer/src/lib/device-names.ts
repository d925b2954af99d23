/**
 * The names devices are shown under. A device's own name (or, for one paired before names existed, its kind and
 * the end of its id); when two entries of one list would read the same (ignoring case and Unicode form), each gets
 * the last characters of its device id appended, so no two devices on one screen are indistinguishable.
 */

import { kindLabel } from './format.js';

/** How many trailing characters of the device id tell same-named devices apart (the gateway's default uses as many). */
export const ID_SUFFIX_LENGTH = 6;

export interface Nameable {
  readonly device_id: string;
  readonly name: string | null;
  readonly client_kind: string | null;
}

function idSuffix(deviceId: string): string {
  return deviceId.slice(-ID_SUFFIX_LENGTH);
}

/** The name of one device on its own. */
export function baseName(d: Nameable): string {
  const name = d.name?.trim() ?? '';
  return name === '' ? `${kindLabel(d.client_kind)} ${idSuffix(d.device_id)}` : name;
}

function sameKey(name: string): string {
  return name.normalize('NFKC').toLocaleLowerCase();
}

/** Device id → the name to show, for every entry of `list`. Entries of the same device share one name. */
export function distinctNames(list: readonly Nameable[]): Map<string, string> {
  const idsByKey = new Map<string, Set<string>>();
  for (const d of list) {
    const key = sameKey(baseName(d));
    const ids = idsByKey.get(key) ?? new Set<string>();
    ids.add(d.device_id);
    idsByKey.set(key, ids);
  }
  const names = new Map<string, string>();
  for (const d of list) {
    const base = baseName(d);
    const shared = (idsByKey.get(sameKey(base))?.size ?? 0) > 1;
    names.set(d.device_id, shared ? `${base} (${idSuffix(d.device_id)})` : base);
  }
  return names;
}
