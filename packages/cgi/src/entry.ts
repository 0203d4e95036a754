// @tsgi/cgi/entry: the same API as `@tsgi/cgi`, built as one self-contained file (the
// core's code included, tree-shaken to what a CGI request uses, `node:fs/promises` loaded
// on demand) so that a CGI script, which starts a new process for every request, loads
// one small module and nothing else (tsup.config.ts).
export * from './index.js';
