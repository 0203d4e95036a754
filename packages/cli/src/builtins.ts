// Node's built-in modules the command needs on every run, taken with
// process.getBuiltinModule rather than `import`. An ES module import of a built-in builds
// its whole namespace, which runs the module's lazy getters: `node:fs` then loads its
// stream classes, `node:util` its MIME parser, `node:module` the source-map support. That
// was about 2 ms of CPU of every `tsgi cgi` request (one process per request), for nothing.
export const fs = process.getBuiltinModule('node:fs');
export const util = process.getBuiltinModule('node:util');
export const nodeModule = process.getBuiltinModule('node:module');
