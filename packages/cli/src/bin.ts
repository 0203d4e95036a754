#!/usr/bin/env node
// The `tsgi` command. Exits when main() settles: a server's handles (and an app's own
// timers or pools) must not keep the process alive after a graceful stop.
import { main } from './run.js';

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(
      `tsgi: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(70);
  },
);
