/**
 * Shares one subscription between several users: the first `attach()` runs `start`, the last detach runs what
 * `start` returned. Views call `$effect(() => store.attach())`, so a store used by two views subscribes once.
 */
export function refCounted(start: () => () => void): () => () => void {
  let users = 0;
  let stop: (() => void) | null = null;
  return () => {
    users += 1;
    if (users === 1) stop = start();
    let detached = false;
    return () => {
      if (detached) return;
      detached = true;
      users -= 1;
      if (users === 0) {
        stop?.();
        stop = null;
      }
    };
  };
}
