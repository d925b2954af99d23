/**
 * The app's one polite live region: views say what changed (a pairing step, a decision, a new request) and the
 * region in App reads it out. Saying the same text twice is announced twice: the region is emptied first and the
 * text set on the next frame, which screen readers hear as a change.
 */
export class Announcer {
  text = $state('');
  #pending: ReturnType<typeof setTimeout> | null = null;

  say(text: string): void {
    const next = text.trim();
    if (next === '') return;
    if (this.#pending !== null) clearTimeout(this.#pending);
    this.text = '';
    this.#pending = setTimeout(() => {
      this.#pending = null;
      this.text = next;
    }, 50);
  }
}

/** Moves keyboard focus to `element` (made focusable by script only when it is not already), without scrolling it out of place. */
export function focusElement(element: HTMLElement | null | undefined): boolean {
  if (element === null || element === undefined || !element.isConnected) return false;
  if (!element.hasAttribute('tabindex') && !isNativelyFocusable(element)) element.setAttribute('tabindex', '-1');
  element.focus({ preventScroll: true });
  if (typeof element.scrollIntoView === 'function') element.scrollIntoView({ block: 'nearest' });
  return document.activeElement === element;
}

function isNativelyFocusable(element: HTMLElement): boolean {
  return ['A', 'BUTTON', 'INPUT', 'SELECT', 'TEXTAREA'].includes(element.tagName);
}
