/** Ticking wall clock for countdowns; one per component that needs it, stopped when the component goes away. */
export class Clock {
  now = $state(Date.now());
  readonly #intervalMs: number;

  constructor(intervalMs = 1000) {
    this.#intervalMs = intervalMs;
  }

  /** Starts ticking; returns the stop function (the shape `$effect` wants for cleanup). */
  start(): () => void {
    this.now = Date.now();
    const timer = setInterval(() => {
      this.now = Date.now();
    }, this.#intervalMs);
    return () => {
      clearInterval(timer);
    };
  }
}
