/**
 * The process entry of one `palyra gateway run --workers N` worker (main/gateway/workers-child.ts has the logic;
 * main/gateway/workers.ts forks this file). Signal handlers come before the module graph loads: a Ctrl-C reaching
 * the whole process group while the workers start must not kill them (the primary coordinates the stop).
 */

process.on('SIGINT', () => undefined);
const earlyTerm = (): void => process.exit(0);
process.on('SIGTERM', earlyTerm);

const { chooseKeychain } = await import('../platform/keychain-choice.js');
const { runGatewayWorker } = await import('../gateway/workers-child.js');
process.off('SIGTERM', earlyTerm);
runGatewayWorker({ chooseKeychain });
