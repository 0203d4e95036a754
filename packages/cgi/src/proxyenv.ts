// httpoxy: HTTP_PROXY out of process.env. The removed value is kept under a global symbol
// so that every copy of this module (the library build, the single-file entry and
// `@tsgi/cgi/httpoxy` are built separately) sees it.
const REMOVED = Symbol.for('tsgi.cgi.removedHttpProxy');
const store = globalThis as { [REMOVED]?: string };

/**
 * deleteProxyEnv: removes `HTTP_PROXY` from `process.env` (httpoxy, CVE-2016-5385 and
 * friends). A CGI server turns a request's `Proxy:` header into the environment variable
 * HTTP_PROXY (RFC 3875 section 4.1.18), the very name HTTP clients read their outgoing
 * proxy from; a client could then route the application's own outbound requests through
 * a host of its choosing. The request header itself stays visible to the application in
 * the environ (`environ.HTTP_PROXY`), because the environ is built from the raw
 * environment block, not from `process.env` (see `readCgiEnvironment`).
 *
 * It must run before the application module is loaded: some HTTP clients read the proxy
 * settings once, when they are imported or their first agent is created. `runCgiModule`
 * calls it before its dynamic `import()`; importing `@tsgi/cgi` (or `@tsgi/cgi/entry`)
 * calls it too, as a side effect, so that `import '@tsgi/cgi'` placed above the app's
 * import is enough; `@tsgi/cgi/httpoxy` exports it without the side effect. Calling it
 * more than once is harmless. Returns whether a variable was removed.
 */
export function deleteProxyEnv(): boolean {
  const v = process.env.HTTP_PROXY;
  if (v === undefined) return false;
  store[REMOVED] ??= v;
  // On Windows process.env is case-insensitive, so this also removes http_proxy there;
  // on POSIX the lower-case name is the operator's own setting and is left alone.
  delete process.env.HTTP_PROXY;
  return true;
}

/** removedProxyValue: what deleteProxyEnv took out of process.env (for the fallback environ). */
export function removedProxyValue(): string | undefined {
  return store[REMOVED];
}
