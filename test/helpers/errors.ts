// The PalyraError code a synchronous call throws (undefined when it returns; the text of any other error).
import { PalyraError } from '../../main/core/errors.js';

export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof PalyraError ? e.code : String(e);
  }
}
