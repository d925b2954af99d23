#!/usr/bin/env node
// The `palyra` command. Runs the compiled CLI (npm run build; `npm ci` builds it through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/main/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('error[internal]: the CLI is not built; run `npm run build` first\n');
  process.exit(1);
}
// A reader that goes away (`palyra gateway run | head -1`) must not crash the command: output to a closed pipe is
// dropped, and a gateway keeps serving.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
  });
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
