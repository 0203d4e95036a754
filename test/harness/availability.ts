/**
 * Which real servers are installed, and a `describe` wrapper that skips (or, in CI, fails) a
 * block whose binaries are missing.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

export type ToolName = 'nginx' | 'lighttpd' | 'apache' | 'fcgiwrap' | 'cgi-fcgi' | 'curl';

interface ToolInfo {
  /** Executable searched for on PATH and in the sbin directories. */
  binary: string;
  /** Debian package that provides it (for the skip message). */
  apt: string;
  /** Other files the tool needs before we call it available. */
  alsoNeeds?: string[];
}

/** Where Debian's apache2 keeps its loadable modules (we load them explicitly). */
export const APACHE_MODULES_DIR = '/usr/lib/apache2/modules';

const TOOLS: Record<ToolName, ToolInfo> = {
  nginx: { binary: 'nginx', apt: 'nginx-light' },
  lighttpd: { binary: 'lighttpd', apt: 'lighttpd' },
  apache: {
    binary: 'apache2',
    apt: 'apache2',
    // The generated httpd.conf LoadModules these by absolute path.
    alsoNeeds: [
      `${APACHE_MODULES_DIR}/mod_mpm_event.so`,
      `${APACHE_MODULES_DIR}/mod_proxy_fcgi.so`,
      `${APACHE_MODULES_DIR}/mod_proxy_scgi.so`,
      `${APACHE_MODULES_DIR}/mod_cgid.so`,
    ],
  },
  fcgiwrap: { binary: 'fcgiwrap', apt: 'fcgiwrap' },
  'cgi-fcgi': { binary: 'cgi-fcgi', apt: 'libfcgi-bin' },
  curl: { binary: 'curl', apt: 'curl' },
};

export const TOOL_NAMES = Object.keys(TOOLS) as ToolName[];

/**
 * Names listed in TSGI_HIDE_SERVERS (comma separated) are reported as not installed. This lets
 * a developer (and our self-test) exercise the skip / TSGI_REQUIRE_SERVERS paths without
 * uninstalling anything.
 */
function hidden(): Set<string> {
  return new Set(
    (process.env.TSGI_HIDE_SERVERS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const resolved = new Map<string, string | undefined>();

/**
 * Absolute path of a binary, looked up on PATH and then in the sbin directories (a non-root
 * user's PATH usually lacks /usr/sbin, where Debian installs nginx, lighttpd, apache2, fcgiwrap).
 */
export function findBinary(binary: string): string | undefined {
  if (resolved.has(binary)) return resolved.get(binary);
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean),
    '/usr/local/sbin',
    '/usr/sbin',
    '/sbin',
    '/usr/local/bin',
    '/usr/bin',
    '/bin',
  ];
  let found: string | undefined;
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (isExecutableFile(candidate)) {
      found = candidate;
      break;
    }
  }
  resolved.set(binary, found);
  return found;
}

/** Path of the tool's binary, or undefined when it is missing (or hidden). */
export function toolPath(name: ToolName): string | undefined {
  const info = TOOLS[name];
  if (!info) throw new Error(`unknown server/tool name ${JSON.stringify(name)}`);
  if (hidden().has(name)) return undefined;
  const bin = findBinary(info.binary);
  if (!bin) return undefined;
  for (const file of info.alsoNeeds ?? []) {
    try {
      statSync(file);
    } catch {
      return undefined;
    }
  }
  return bin;
}

/** True when the server (or helper tool) is installed and usable by the harness. */
export function serverAvailable(name: ToolName): boolean {
  return toolPath(name) !== undefined;
}

/** `<binary> not installed (apt-get install <package>)` for each missing tool. */
export function missingMessage(missing: readonly ToolName[]): string {
  const simulated = hidden();
  return missing
    .map(
      (n) =>
        `${TOOLS[n].binary} not installed (apt-get install ${TOOLS[n].apt})` +
        (simulated.has(n) ? ' [simulated by TSGI_HIDE_SERVERS]' : ''),
    )
    .join('; ');
}

export type BlockDecision =
  | { action: 'run' }
  | { action: 'skip'; message: string }
  | { action: 'fail'; message: string };

/** The decision for a block titled `title` when `what` (undefined: nothing) is missing. */
function decideBlock(
  title: string,
  what: string | undefined,
  requireServers: boolean,
): BlockDecision {
  if (what === undefined) return { action: 'run' };
  if (requireServers) {
    return {
      action: 'fail',
      message: `${title}: ${what}, and TSGI_REQUIRE_SERVERS=1 forbids skipping`,
    };
  }
  return { action: 'skip', message: `SKIP ${title}: ${what}` };
}

/** Pure decision behind describeWithServer (exported for the self-test). */
export function decideServerBlock(
  title: string,
  missing: readonly ToolName[],
  requireServers: boolean,
): BlockDecision {
  return decideBlock(title, missing.length ? missingMessage(missing) : undefined, requireServers);
}

/** Registers the block as decided: `missing` names the binaries in the failing test's title. */
function describeAs(
  decision: BlockDecision,
  missing: readonly string[],
  title: string,
  fn: () => void,
): void {
  switch (decision.action) {
    case 'run':
      describe(title, fn);
      return;
    case 'skip':
      console.warn(decision.message);
      describe.skip(title, fn);
      return;
    case 'fail':
      describe(title, () => {
        it(`requires ${missing.join(', ')}`, () => {
          throw new Error(decision.message);
        });
      });
      return;
  }
}

const requireServers = () => process.env.TSGI_REQUIRE_SERVERS === '1';

/**
 * `describe(title, fn)` when every named server/tool is installed. Otherwise the block is
 * skipped with a visible `console.warn('SKIP <title>: <binary> not installed (...)')`, except
 * when TSGI_REQUIRE_SERVERS=1 (CI): then the block registers one failing test naming the
 * missing binary, so a broken CI image can't silently skip the integration tests.
 */
export function describeWithServer(
  names: ToolName | readonly ToolName[],
  title: string,
  fn: () => void,
): void {
  const list: readonly ToolName[] = typeof names === 'string' ? [names] : names;
  const missing = list.filter((n) => !serverAvailable(n));
  describeAs(decideServerBlock(title, missing, requireServers()), missing, title, fn);
}

/**
 * describeWithBinary: describeWithServer for a binary the harness does not know (such as
 * spawn-fcgi), looked up on PATH and in the sbin dirs; `apt` names its Debian package for the
 * SKIP line. TSGI_HIDE_SERVERS=NAME pretends it is missing.
 */
export function describeWithBinary(
  binary: string,
  apt: string,
  title: string,
  fn: () => void,
): void {
  const simulated = hidden().has(binary);
  const missing = simulated || findBinary(binary) === undefined;
  const what = missing
    ? `${binary} not installed (apt-get install ${apt})${simulated ? ' [simulated by TSGI_HIDE_SERVERS]' : ''}`
    : undefined;
  describeAs(decideBlock(title, what, requireServers()), [binary], title, fn);
}
