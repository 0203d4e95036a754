// Real Hono, Express 5 and Koa 3 apps, unchanged, behind real servers: one list of cases
// (cases.ts) for every framework behind every target (targets.ts):
//
//   nginx fastcgi_pass (keep-conn) -> @tsgi/fastcgi   in a server process of its own
//   lighttpd mod_scgi              -> @tsgi/scgi      in a server process of its own
//   nginx scgi_pass                -> @tsgi/scgi      in a server process of its own
//   Apache mod_cgid (mpm_event)    -> a CGI script running the app with @tsgi/cgi's runCgi
//   @tsgi/http                     (the HTTP front; no other server)
//
// What the servers do to the framework's output (measured, and named in cases.ts onWire)
// is summed up in docs/frameworks.md, "Tested behind real servers".
//
// The app runs in a process of its own (backend.ts, bundled), so the 50 MiB upload can
// report that process's peak RSS and a disconnect is seen by the framework in the process
// that serves it; its probe events come back through a file. Skipped, with a message, when
// a server is not installed (failing instead under TSGI_REQUIRE_SERVERS=1).
import { afterAll, afterEach, beforeAll, it } from 'vitest';
import { httpRequest } from '../harness/clients.js';
import { describeWithServer } from '../harness/servers.js';
import { FRAMEWORKS } from './apps.js';
import { FRAMEWORK_CASES } from './cases.js';
import { bundleBackend, deploy, makeWorkDir, type Running, TARGETS } from './targets.js';

let work: Awaited<ReturnType<typeof makeWorkDir>> | undefined;
let script = '';
beforeAll(async () => {
  work = await makeWorkDir();
  script = await bundleBackend(work.dir);
});
afterAll(async () => {
  await work?.remove();
});

for (const target of TARGETS) {
  for (const fw of FRAMEWORKS) {
    describeWithServer(target.tools, `${fw.name} behind ${target.label}`, () => {
      let running: Running | undefined;
      beforeAll(async () => {
        running = await deploy(target, fw, script, (work as { dir: string }).dir);
      });
      afterAll(async () => {
        await running?.stop();
      });
      afterEach(async (context) => {
        if (running && context.task.result?.state === 'fail') {
          console.warn(`--- ${fw.name} behind ${target.id} ---\n${await running.diagnostics()}`);
        }
      });

      for (const c of FRAMEWORK_CASES) {
        it(c.name, async () => {
          const r = running as Running;
          await c.run({
            fw,
            target,
            running: r,
            request: (options) => httpRequest({ ...options, port: r.port }),
          });
        });
      }
    });
  }
}
