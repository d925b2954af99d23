// Types of scripts/start.mjs for the tests that import its helpers.
export const repoRoot: string;
export const ELECTRON_MISSING_LINE: string;
export function newestMtime(paths: string[]): number;
export function isStale(outputs: string[], sources: string[]): boolean;
export function findElectronBinary(root?: string): string | null;
export function buildIfNeeded(root?: string, env?: NodeJS.ProcessEnv): Promise<string[]>;
export function newLink(root?: string, env?: NodeJS.ProcessEnv): Promise<number>;
