/**
 * Real front servers (nginx, lighttpd, Apache) in the foreground, with a private config, logs
 * and temp dir, on 127.0.0.1 and a port chosen at run time. See README.md next to this file.
 */
import { readFileSync } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type ToolName, toolPath } from './availability.js';
import { apacheConfig, apacheRunDir } from './config/apache.js';
import { isScript, isSocket } from './config/common.js';
import { lighttpdConfig, lighttpdFcgiDocroot } from './config/lighttpd.js';
import { nginxConfig } from './config/nginx.js';
import {
  freePort,
  NotReadyError,
  readIfExists,
  type Spawned,
  spawnTracked,
  tail,
  waitForListener,
} from './process.js';
import type {
  ConfigContext,
  FrontHandle,
  FrontOptions,
  FrontServer,
  SocketBackend,
  TcpBackend,
} from './types.js';

export type {
  BlockDecision,
  ToolName,
} from './availability.js';
export {
  decideServerBlock,
  describeWithBinary,
  describeWithServer,
  findBinary,
  serverAvailable,
} from './availability.js';
export type * from './types.js';

/** Numeric id of a user or group from /etc/passwd or /etc/group (65534 if not found). */
function systemId(file: '/etc/passwd' | '/etc/group', name: string): number {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    // fall through
  }
  return 65534;
}

const TOOL_OF: Record<FrontServer, ToolName> = {
  nginx: 'nginx',
  lighttpd: 'lighttpd',
  apache: 'apache',
};

const isRoot = () => process.getuid?.() === 0;
const keepDirs = () => process.env.TSGI_KEEP_SERVER_DIRS === '1';

/**
 * `/app`, `/a/b` or `/`. Restricted to unreserved URL characters so it can be written into
 * three config languages (and regexes) without quoting surprises.
 */
export function normalizePrefix(prefix: string): string {
  if (prefix === '/') return prefix;
  const p = prefix.replace(/\/+$/, '');
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(p)) {
    throw new Error(
      `prefix must look like /app or /a/b (letters, digits, . _ ~ -), got ${JSON.stringify(prefix)}`,
    );
  }
  return p;
}

function validate(opts: FrontOptions): void {
  const b = opts.backend as unknown;
  if (!b || typeof b !== 'object') throw new Error('startFront: backend is required');
  if (opts.protocol === 'cgi') {
    if (!isScript(opts.backend)) throw new Error('startFront: cgi needs backend { script }');
    if (!isAbsolute(opts.backend.script)) {
      throw new Error(`startFront: CGI script path must be absolute: ${opts.backend.script}`);
    }
  } else if (isScript(opts.backend)) {
    throw new Error(`startFront: ${opts.protocol} needs backend { host, port } or { socket }`);
  } else if (isSocket(opts.backend) && !isAbsolute(opts.backend.socket)) {
    throw new Error(`startFront: socket path must be absolute: ${opts.backend.socket}`);
  }
}

/**
 * Apache started as root serves (and runs CGI scripts) as nobody, so the script, a backend's
 * unix socket and every directory above them must be usable by "others". Inside os.tmpdir()
 * (where tests create fixtures with mkdtemp, mode 0700) the bits are added; elsewhere they are
 * only checked, with an error saying what to fix.
 */
async function grantOthers(path: string, want: 'rx' | 'rw'): Promise<void> {
  const tmp = tmpdir();
  const rel = relative(tmp, path);
  const insideTmp = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  const fileBits = want === 'rx' ? 0o005 : 0o006;
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    return; // not created yet (a socket the backend will create): nothing to do now
  }
  const dirs: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    dirs.push(d);
    if (d === dirname(d)) break;
  }
  if (insideTmp) {
    if ((st.mode & fileBits) !== fileBits) await chmod(path, (st.mode & 0o7777) | fileBits);
    for (const d of dirs) {
      const r = relative(tmp, d);
      if (r === '' || r.startsWith('..') || isAbsolute(r)) break;
      const ds = await stat(d);
      if ((ds.mode & 0o001) === 0) await chmod(d, (ds.mode & 0o7777) | 0o001);
    }
    return;
  }
  const problems: string[] = [];
  if ((st.mode & fileBits) !== fileBits) problems.push(`${path} needs o+${want}`);
  for (const d of dirs) {
    const ds = await stat(d);
    if ((ds.mode & 0o001) === 0) problems.push(`${d}${d.endsWith(sep) ? '' : sep} needs o+x`);
  }
  if (problems.length) {
    throw new Error(
      `Apache runs as nobody when started as root and could not reach ${path}: ${problems.join(', ')}`,
    );
  }
}

export interface FcgiwrapHandle {
  /** Pass this as a front's `backend`. */
  backend: TcpBackend | SocketBackend;
  pid: number;
  /** What fcgiwrap printed (its own errors; CGI stderr goes over FastCGI with -f). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Start fcgiwrap as a FastCGI backend (it execs the SCRIPT_FILENAME it is sent). Used by nginx's
 * cgi protocol and by the self-test's FastCGI fixtures.
 */
export async function startFcgiwrap(
  options: { listen?: 'tcp' | 'unix'; socketDir?: string; children?: number } = {},
): Promise<FcgiwrapHandle> {
  const bin = toolPath('fcgiwrap');
  if (!bin) throw new Error('fcgiwrap not installed (apt-get install fcgiwrap)');
  const children = String(options.children ?? 4);
  if ((options.listen ?? 'unix') === 'unix') {
    const ownDir = options.socketDir === undefined;
    const dir = options.socketDir ?? (await mkdtemp(join(tmpdir(), 'tsgi-fcgiwrap-')));
    await chmod(dir, 0o755);
    const socket = join(dir, 'fcgiwrap.sock');
    await rm(socket, { force: true });
    // umask 000: the socket must be writable by the front's workers, whatever user they run as.
    const proc = spawnTracked('/bin/sh', [
      '-c',
      'umask 000 && exec "$0" -f -c "$1" -s "unix:$2"',
      bin,
      children,
      socket,
    ]);
    try {
      await waitForListener({ path: socket }, proc, 10_000);
    } catch (err) {
      await proc.stop();
      if (ownDir) await rm(dir, { recursive: true, force: true });
      throw new Error(`fcgiwrap did not start: ${(err as Error).message}\n${tail(proc.output())}`);
    }
    return {
      backend: { socket },
      pid: proc.pid,
      output: proc.output,
      stop: async () => {
        await proc.stop();
        if (ownDir) await rm(dir, { recursive: true, force: true });
        else await rm(socket, { force: true });
      },
    };
  }
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = spawnTracked(bin, ['-f', '-c', children, '-s', `tcp:127.0.0.1:${port}`]);
    try {
      await waitForListener({ port }, proc, 10_000);
      return {
        backend: { host: '127.0.0.1', port },
        pid: proc.pid,
        output: proc.output,
        stop: () => proc.stop(),
      };
    } catch (err) {
      await proc.stop();
      lastError = `${(err as Error).message}\n${tail(proc.output())}`;
    }
  }
  throw new Error(`fcgiwrap did not start: ${lastError}`);
}

interface Launch {
  args: string[];
  config: string;
  configPath: string;
}

function launchFor(ctx: ConfigContext): Launch {
  const { dir } = ctx;
  switch (ctx.opts.server) {
    case 'nginx': {
      const configPath = join(dir, 'nginx.conf');
      return {
        configPath,
        config: nginxConfig(ctx),
        // -p: relative paths resolve under the private dir; daemon off keeps the master in the
        // foreground (its workers stay in our process group).
        args: ['-p', `${dir}/`, '-c', configPath, '-g', 'daemon off;'],
      };
    }
    case 'lighttpd': {
      const configPath = join(dir, 'lighttpd.conf');
      return { configPath, config: lighttpdConfig(ctx), args: ['-D', '-f', configPath] };
    }
    case 'apache': {
      const configPath = join(dir, 'httpd.conf');
      // -DFOREGROUND, not -X: -X is a single process (prefork would serve one request at a
      // time) and, started as root, runs everything as nobody, so mod_cgid can't clean up its
      // socket. With -DFOREGROUND the root parent stays attached to us and forks real children.
      return {
        configPath,
        config: apacheConfig(ctx),
        args: ['-DFOREGROUND', '-d', dir, '-f', configPath],
      };
    }
  }
}

const BIND_FAILED = /Address already in use|EADDRINUSE|could not bind|make_sock/i;

/** Start a real front server; see FrontOptions. Always `stop()` it (or use `useFront`). */
export async function startFront(options: FrontOptions): Promise<FrontHandle> {
  const opts: FrontOptions = { ...options };
  validate(opts);
  const prefix = normalizePrefix(opts.prefix ?? '/app');
  const binary = toolPath(TOOL_OF[opts.server]);
  if (!binary) {
    throw new Error(`startFront: ${opts.server} is not installed (see describeWithServer)`);
  }
  const root = isRoot();
  const dir = await mkdtemp(join(tmpdir(), `tsgi-${opts.server}-${opts.protocol}-`));
  const helpers: { stop(): Promise<void>; output(): string }[] = [];
  let proc: Spawned | undefined;
  const errorLogPath = join(dir, 'error.log');
  const accessLogPath = join(dir, 'access.log');
  const gatherLog = async () => {
    const parts = [await readIfExists(errorLogPath)];
    if (proc?.output().trim()) parts.push(`--- ${opts.server} stdout/stderr ---\n${proc.output()}`);
    for (const h of helpers) {
      if (h.output().trim()) parts.push(`--- fcgiwrap output ---\n${h.output()}`);
    }
    return parts.join('\n');
  };
  const cleanup = async () => {
    await proc?.stop();
    for (const h of helpers) await h.stop();
    if (!keepDirs()) await rm(dir, { recursive: true, force: true });
  };

  try {
    // Workers that don't run as us (Apache's nobody) must traverse the dir.
    await chmod(dir, 0o755);
    for (const sub of ['tmp', 'htdocs']) await mkdir(join(dir, sub), { mode: 0o755 });

    let fcgiwrapSocket: string | undefined;
    if (opts.server === 'nginx' && opts.protocol === 'cgi') {
      const fw = await startFcgiwrap({ listen: 'unix', socketDir: dir });
      helpers.push(fw);
      fcgiwrapSocket = (fw.backend as SocketBackend).socket;
    }
    if (opts.server === 'apache') {
      const run = apacheRunDir(dir);
      await mkdir(run, { mode: 0o755 });
      if (root) {
        // Apache's children (nobody) manage the cgid socket and mutex files in here.
        await chown(run, systemId('/etc/passwd', 'nobody'), systemId('/etc/group', 'nogroup'));
        if (isScript(opts.backend)) await grantOthers(opts.backend.script, 'rx');
        if (isSocket(opts.backend)) await grantOthers(opts.backend.socket, 'rw');
      }
    }
    if (opts.server === 'lighttpd' && opts.protocol === 'fastcgi' && opts.fcgiScriptFilename) {
      if (prefix === '/') throw new Error('fcgiScriptFilename with lighttpd needs a prefix');
      const link = join(lighttpdFcgiDocroot(dir), prefix);
      await mkdir(dirname(link), { recursive: true });
      await symlink(opts.fcgiScriptFilename, link);
    }
    if (isScript(opts.backend)) {
      const st = await lstat(opts.backend.script).catch(() => undefined);
      if (!st) throw new Error(`startFront: CGI script ${opts.backend.script} does not exist`);
    }

    const readyTimeout = opts.readyTimeoutMs ?? 15_000;
    let launch: Launch | undefined;
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const ctx: ConfigContext = { opts, prefix, port, dir, root, fcgiwrapSocket };
      launch = launchFor(ctx);
      await writeFile(launch.configPath, launch.config);
      await rm(errorLogPath, { force: true });
      proc = spawnTracked(binary, launch.args, { cwd: dir });
      try {
        await waitForListener({ port }, proc, readyTimeout);
        break;
      } catch (err) {
        await proc.stop();
        const log = await gatherLog();
        // The port was free when we picked it; someone may have taken it since.
        if (
          attempt < 3 &&
          err instanceof NotReadyError &&
          err.exitedEarly &&
          BIND_FAILED.test(log)
        ) {
          continue;
        }
        throw new Error(
          `${opts.server} (${opts.protocol}) did not start: ${(err as Error).message}\n` +
            `command: ${proc.commandLine}\nconfig: ${launch.configPath}` +
            `${keepDirs() ? '' : ' (removed; set TSGI_KEEP_SERVER_DIRS=1 to keep it)'}\n` +
            `--- last lines of the error log ---\n${tail(log, 40)}`,
        );
      }
    }

    const baseUrl = `http://127.0.0.1:${port}`;
    let finalLogs: { error: string; access: string } | undefined;
    let stopping: Promise<void> | undefined;
    const handle: FrontHandle = {
      server: opts.server,
      protocol: opts.protocol,
      port,
      baseUrl,
      prefix,
      url: (path = '') => `${baseUrl}${prefix === '/' ? '' : prefix}${path}`,
      dir,
      configPath: launch.configPath,
      pid: proc.pid,
      errorLog: async () => finalLogs?.error ?? (await gatherLog()),
      accessLog: async () => finalLogs?.access ?? (await readIfExists(accessLogPath)),
      stop: () => {
        stopping ??= (async () => {
          await proc?.stop();
          for (const h of helpers) await h.stop();
          // Keep the logs readable after the dir is gone.
          finalLogs = { error: await gatherLog(), access: await readIfExists(accessLogPath) };
          if (!keepDirs()) await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
    return handle;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Vitest helper: start the front in beforeAll, stop it in afterAll, and print the tail of its
 * error log when a test in the block fails. Returns a getter for the handle.
 *
 *   const front = useFront(() => ({ server: 'nginx', protocol: 'fastcgi', backend }));
 *   it('works', async () => { await fetch(front().url('/x')) });
 */
export function useFront(
  options: FrontOptions | (() => FrontOptions | Promise<FrontOptions>),
): () => FrontHandle {
  let handle: FrontHandle | undefined;
  beforeAll(async () => {
    handle = await startFront(typeof options === 'function' ? await options() : options);
  });
  afterEach(async (context) => {
    if (handle && context.task.result?.state === 'fail') {
      console.warn(
        `--- ${handle.server} ${handle.protocol} error log (${handle.dir}) ---\n` +
          tail(await handle.errorLog(), 30),
      );
    }
  });
  afterAll(async () => {
    await handle?.stop();
  });
  return () => {
    if (!handle) throw new Error('useFront: the front is not running (did beforeAll fail?)');
    return handle;
  };
}
