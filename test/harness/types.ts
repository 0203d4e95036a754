export type FrontServer = 'nginx' | 'lighttpd' | 'apache';
export type FrontProtocol = 'fastcgi' | 'scgi' | 'cgi' | 'http';

export type TcpBackend = { host: string; port: number };
export type SocketBackend = { socket: string };
export type ScriptBackend = { script: string };
export type Backend = TcpBackend | SocketBackend | ScriptBackend;

export interface FrontOptions {
  server: FrontServer;
  protocol: FrontProtocol;
  /**
   * fastcgi / scgi / http: where the backend listens, `{ host, port }` or `{ socket }` (absolute
   * unix socket path). cgi: `{ script }`, the absolute path of an executable CGI script.
   */
  backend: Backend;
  /**
   * URL prefix the backend is mounted at (default `/app`). `prefix` itself and every path under
   * `prefix/` go to the backend; `/apple` does not.
   */
  prefix?: string;
  /** Appended inside the nginx `server {}`, the lighttpd config, or Apache's server config. */
  extraConfig?: string;
  /**
   * cgi only: extra environment variables for the script. PATH (the test runner's) is always
   * passed, because Apache's mod_cgi and fcgiwrap start scripts with an almost empty environment
   * and `#!/usr/bin/env node` needs PATH.
   */
  cgiEnv?: Record<string, string>;
  /**
   * fastcgi only: force the SCRIPT_FILENAME parameter. Needed when the FastCGI backend is
   * fcgiwrap, which execs SCRIPT_FILENAME. nginx: `fastcgi_param`; Apache: `ProxyFCGISetEnvIf`;
   * lighttpd: the backend's `docroot` plus a symlink at docroot+prefix (lighttpd builds
   * SCRIPT_FILENAME as docroot + SCRIPT_NAME and has no way to set it directly).
   */
  fcgiScriptFilename?: string;
  /** How long to wait for the server to accept connections (default 15000 ms). */
  readyTimeoutMs?: number;

  // ---- nginx ---------------------------------------------------------------------------------
  /** nginx fastcgi: `fastcgi_keep_conn on` and `keepalive 16` in the upstream block. */
  keepConn?: boolean;
  /** nginx: false gives `fastcgi_request_buffering off` / `scgi_…` / `proxy_…` (default on). */
  requestBuffering?: boolean;
  /** nginx: `gzip on`, gzip_types text/plain + json etc., `gzip_min_length 1`, `gzip_proxied any`. */
  gzip?: boolean;
  /**
   * nginx fastcgi/scgi: send SCRIPT_NAME=prefix and PATH_INFO=rest (fastcgi_split_path_info, or
   * a named-capture location for SCGI). Off by default, as with Debian's stock params: FastCGI
   * then gets the whole decoded path in SCRIPT_NAME and SCGI gets neither. Always on for cgi.
   */
  splitPathInfo?: boolean;

  // ---- lighttpd ------------------------------------------------------------------------------
  /** lighttpd: `server.stream-request-body` (0 buffer, 1 stream, 2 stream without buffering). */
  streamRequestBody?: 0 | 1 | 2;
  /** lighttpd cgi: `cgi.local-redir = "enable"`. */
  localRedir?: boolean;
  /**
   * lighttpd fastcgi: a FastCGI Authorizer (`"mode" => "authorizer"`, FastCGI spec S6.3) in
   * the prefix's `fastcgi.server` entry, next to the backend. lighttpd asks it first; its 200
   * lets the request through to the backend (with its `Variable-NAME` headers as the
   * backend's NAME params), any other response goes to the client instead. Other servers:
   * ignored (Apache's mod_authnz_fcgi goes in `extraConfig`; nginx has no FastCGI authorizer).
   */
  fcgiAuthorizer?: TcpBackend | SocketBackend;

  // ---- lighttpd and apache -------------------------------------------------------------------
  /** lighttpd: mod_deflate for text/plain etc.; Apache: `AddOutputFilterByType DEFLATE …`. */
  deflate?: boolean;

  // ---- apache --------------------------------------------------------------------------------
  /** Apache MPM: event (default; CGI through mod_cgid + ScriptSock) or prefork (mod_cgi). */
  mpm?: 'event' | 'prefork';
  /** Apache: `SetEnv ap_trust_cgilike_cl 1` (keep a CGI-like backend's Content-Length). */
  trustCgiLikeCl?: boolean;
  /** Apache fastcgi/http: `SetEnv proxy-sendcl 1` (spool chunked bodies, send CONTENT_LENGTH). */
  sendCl?: boolean;
  /** Apache scgi: set proxy-scgi-pathinfo (via SetEnvIf, SetEnv runs too late) for PATH_INFO. */
  scgiPathInfo?: boolean;
}

export interface FrontHandle {
  server: FrontServer;
  protocol: FrontProtocol;
  port: number;
  /** `http://127.0.0.1:PORT` */
  baseUrl: string;
  prefix: string;
  /** `baseUrl + prefix + path`: url('/extra?x=1') is under the mount point. */
  url(path?: string): string;
  /** Private directory holding config, logs, pid and temp files (removed by stop()). */
  dir: string;
  /** The main config file. */
  configPath: string;
  /** pid of the server's main process. */
  pid: number;
  /** Error log content plus whatever the server (and fcgiwrap for nginx cgi) printed. */
  errorLog(): Promise<string>;
  accessLog(): Promise<string>;
  /** Kill the server (its whole process group), wait for it, remove `dir`. Idempotent. */
  stop(): Promise<void>;
}

/** Everything a config generator needs. */
export interface ConfigContext {
  opts: FrontOptions;
  prefix: string;
  port: number;
  dir: string;
  /** Running as root: servers need User/Group or `user` directives. */
  root: boolean;
  /** nginx cgi: the fcgiwrap socket we started. */
  fcgiwrapSocket?: string;
}
