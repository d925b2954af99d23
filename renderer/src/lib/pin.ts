/**
 * A PIN as people type or paste it: "655 376", "655-376", " 655376 " all mean 655376. Spaces, dashes and dots
 * between digits are dropped; anything else is a mistake the form names instead of silently cutting it.
 */
export interface PinReading {
  /** The digits, when the text is exactly six of them (with separators); otherwise null. */
  readonly pin: string | null;
  /** What is wrong, in words, when there is something typed that is not a PIN; null when valid or empty. */
  readonly problem: string | null;
}

const SEPARATORS = /[\s\-‐-―.·]/gu;

export const PIN_LENGTH = 6;

export function readPin(text: string): PinReading {
  const compact = text.replace(SEPARATORS, '');
  if (compact === '') return { pin: null, problem: null };
  if (!/^[0-9]+$/.test(compact)) return { pin: null, problem: 'A PIN has only digits (spaces and dashes between them are fine).' };
  if (compact.length !== PIN_LENGTH) {
    const count = `${compact.length} ${compact.length === 1 ? 'digit' : 'digits'}`;
    return { pin: null, problem: `A PIN has ${PIN_LENGTH} digits; this has ${count}.` };
  }
  return { pin: compact, problem: null };
}
