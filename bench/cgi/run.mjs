#!/usr/bin/env node
// bench/cgi: the whole-process cost of one CGI request. The hello example (examples/hello.mjs)
// runs as a CGI script (a CGI request's environment, empty stdin, stdout a pipe), in the
// deployment shapes docs/deploy/cgi.md describes, against `node -e 0` (Node's own start-up,
// the floor) and against plain Node scripts that print the same response bytes.
//
//   pnpm build && node bench/cgi/run.mjs [--rounds 5] [--runs 20] [--loop] [--inherit-env]
//
// Every variant is checked to print byte-identical output first. With hyperfine installed
// the timing is hyperfine's (-N, --output=pipe), repeated in rounds that interleave the
// variants, so that a load change on a shared machine hits them all alike; `--loop` (or no
// hyperfine) uses an interleaved spawnSync loop instead. The environment is a clean CGI one
// (a server passes nothing else); `--inherit-env` keeps this shell's (NODE_OPTIONS,
// NODE_EXTRA_CA_CERTS and the like change Node's start-up time a lot).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '../..');
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '20' },
    loop: { type: 'boolean', default: false },
    'inherit-env': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const runs = Number(args.runs);

const entry = join(root, 'packages/cgi/dist/entry.js');
const index = join(root, 'packages/cgi/dist/index.js');
const cliBin = join(root, 'packages/cli/dist/bin.js');
if (!existsSync(entry) || !existsSync(index)) {
  console.error('bench/cgi: packages/cgi/dist is missing; run `pnpm build` first');
  process.exit(1);
}
const helloSource = existsSync(join(root, 'examples/hello.mjs'))
  ? join(root, 'examples/hello.mjs')
  : join(import.meta.dirname, 'hello.mjs');

const dir = mkdtempSync(join(tmpdir(), 'tsgi-bench-cgi-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const hello = join(dir, 'hello.mjs');
writeFileSync(hello, readFileSync(helloSource));

// The CGI request: what Apache mod_cgi would set for GET /cgi/hello.
const cgiEnv = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  GATEWAY_INTERFACE: 'CGI/1.1',
  SERVER_SOFTWARE: 'Apache/2.4',
  SERVER_NAME: '127.0.0.1',
  SERVER_PORT: '80',
  SERVER_PROTOCOL: 'HTTP/1.1',
  REQUEST_METHOD: 'GET',
  REQUEST_URI: '/cgi/hello',
  SCRIPT_NAME: '/cgi/hello',
  SCRIPT_FILENAME: join(dir, 'hello.cgi.mjs'),
  QUERY_STRING: '',
  REMOTE_ADDR: '127.0.0.1',
  REMOTE_PORT: '40000',
  HTTP_HOST: '127.0.0.1',
  HTTP_USER_AGENT: 'bench',
  HTTP_ACCEPT: '*/*',
};
const env = args['inherit-env'] ? { ...process.env, ...cgiEnv } : cgiEnv;

// The deployment shapes (docs/deploy/cgi.md), each a file run as `node FILE`.
const files = {
  // 1. The copy-paste script: the single-file entry, the app loaded with import().
  'hello.cgi.mjs': `import { runCgiModule } from ${JSON.stringify(entry)};\nprocess.exit(await runCgiModule(${JSON.stringify(hello)}));\n`,
  // 2. The same with the library build (the core as a separate, complete module).
  'hello-lib.cgi.mjs': `import { runCgiModule } from ${JSON.stringify(index)};\nprocess.exit(await runCgiModule(${JSON.stringify(hello)}));\n`,
};
for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);

// 3. One bundle of app + adapter (esbuild, as docs/deploy/cgi.md shows), ESM and CommonJS.
const req = createRequire(join(root, 'package.json'));
const fromTsup = createRequire(req.resolve('tsup'));
const esbuild = fromTsup(fromTsup.resolve('esbuild'));
const bundleEntry = join(dir, 'bundle-entry.mjs');
writeFileSync(
  bundleEntry,
  `import { runCgi } from ${JSON.stringify(entry)};\nimport app from ${JSON.stringify(hello)};\nrunCgi(app).then((code) => process.exit(code));\n`,
);
for (const format of ['esm', 'cjs']) {
  esbuild.buildSync({
    entryPoints: [bundleEntry],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format,
    outfile: join(dir, `hello-bundle.cgi.${format === 'esm' ? 'mjs' : 'cjs'}`),
    logLevel: 'error',
  });
}

// The response every variant must print, byte for byte (taken from the first tsgi run).
const reference = spawnSync(process.execPath, [join(dir, 'hello.cgi.mjs')], {
  env,
  encoding: 'latin1',
});
if (reference.status !== 0 || !reference.stdout.startsWith('Status: 200 OK\r\n')) {
  console.error(`bench/cgi: the tsgi script failed:\n${reference.stdout}\n${reference.stderr}`);
  process.exit(1);
}
const bytes = JSON.stringify(reference.stdout);
writeFileSync(join(dir, 'plain.mjs'), `process.stdout.write(Buffer.from(${bytes}, 'latin1'));\n`);
writeFileSync(join(dir, 'plain.cjs'), `process.stdout.write(Buffer.from(${bytes}, 'latin1'));\n`);

const node = process.execPath;
const variants = [
  { name: 'node -e 0', cmd: [node, '-e', '0'], floor: true },
  { name: 'plain Node script (.mjs)', cmd: [node, join(dir, 'plain.mjs')], kind: 'esm' },
  { name: 'plain Node script (.cjs)', cmd: [node, join(dir, 'plain.cjs')], kind: 'cjs' },
  { name: 'tsgi: script + @tsgi/cgi/entry', cmd: [node, join(dir, 'hello.cgi.mjs')], vs: 'esm' },
  {
    name: 'tsgi: script + @tsgi/cgi (library build)',
    cmd: [node, join(dir, 'hello-lib.cgi.mjs')],
    vs: 'esm',
  },
  {
    name: 'tsgi: one ESM bundle (app + adapter)',
    cmd: [node, join(dir, 'hello-bundle.cgi.mjs')],
    vs: 'esm',
  },
  {
    name: 'tsgi: one CommonJS bundle (app + adapter)',
    cmd: [node, join(dir, 'hello-bundle.cgi.cjs')],
    vs: 'cjs',
  },
];
if (existsSync(cliBin)) {
  const probe = spawnSync(node, [cliBin, 'cgi', hello], { env, encoding: 'latin1' });
  if (probe.status === 0 && probe.stdout === reference.stdout) {
    variants.push({
      name: 'tsgi cgi hello.mjs (the command)',
      cmd: [node, cliBin, 'cgi', hello],
      vs: 'esm',
    });
  } else {
    console.error(
      'bench/cgi: `tsgi cgi` not usable yet (packages/cli has no cgi command?); skipped',
    );
  }
}

for (const v of variants) {
  if (v.floor) continue;
  const r = spawnSync(v.cmd[0], v.cmd.slice(1), { env, encoding: 'latin1' });
  if (r.status !== 0 || r.stdout !== reference.stdout) {
    console.error(`bench/cgi: ${v.name} printed something else:\n${r.stdout}\n${r.stderr}`);
    process.exit(1);
  }
}

const hyperfine = (() => {
  if (args.loop) return undefined;
  try {
    execFileSync('hyperfine', ['--version'], { stdio: 'ignore' });
    return 'hyperfine';
  } catch {
    return undefined;
  }
})();

const quote = (s) => (/^[A-Za-z0-9_./=:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const times = variants.map(() => []);
// hyperfine's user + system CPU time, mean per round: steadier than wall time on a busy machine.
const cpu = variants.map(() => []);
for (let round = 0; round < rounds; round++) {
  if (hyperfine) {
    const out = join(dir, `round${round}.json`);
    execFileSync(
      hyperfine,
      [
        '-N',
        '--output=pipe',
        '--warmup',
        '3',
        '--runs',
        String(runs),
        '--export-json',
        out,
        ...variants.map((v) => v.cmd.map(quote).join(' ')),
      ],
      { env, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const json = JSON.parse(readFileSync(out, 'utf8'));
    json.results.forEach((r, i) => {
      times[i].push(...r.times.map((t) => t * 1000));
      cpu[i].push((r.user + r.system) * 1000);
    });
  } else {
    for (let i = 0; i < runs; i++) {
      variants.forEach((v, j) => {
        const t = process.hrtime.bigint();
        spawnSync(v.cmd[0], v.cmd.slice(1), { env, stdio: ['ignore', 'pipe', 'ignore'] });
        times[j].push(Number(process.hrtime.bigint() - t) / 1e6);
      });
    }
  }
}

const quantile = (a, q) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const stats = times.map((t, i) => ({
  median: quantile(t, 0.5),
  p25: quantile(t, 0.25),
  min: Math.min(...t),
  mean: t.reduce((a, b) => a + b, 0) / t.length,
  cpu: cpu[i].length ? quantile(cpu[i], 0.5) : undefined,
}));
const floor = stats[0].median;
const plain = {
  esm: stats[variants.findIndex((v) => v.kind === 'esm')].median,
  cjs: stats[variants.findIndex((v) => v.kind === 'cjs')].median,
};
const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);
console.log(
  `\nbench/cgi: ${times[0].length} runs per variant (${rounds} interleaved rounds, ${hyperfine ? 'hyperfine -N --output=pipe' : 'spawnSync loop'}), node ${process.version}, ${args['inherit-env'] ? 'inherited environment' : 'clean CGI environment'}\n`,
);
const withCpu = stats[0].cpu !== undefined;
const plainCpu = {
  esm: stats[variants.findIndex((v) => v.kind === 'esm')].cpu,
  cjs: stats[variants.findIndex((v) => v.kind === 'cjs')].cpu,
};
console.log(
  `| variant | wall median ms | p25 | min | × \`node -e 0\` | × plain script (same module type) |${withCpu ? ' CPU (user+sys) ms | CPU × `node -e 0` | CPU × plain |' : ''}`,
);
console.log(`|---|---|---|---|---|---|${withCpu ? '---|---|---|' : ''}`);
variants.forEach((v, i) => {
  const s = stats[i];
  const vsPlain = v.vs ? f2(s.median / plain[v.vs]) : '';
  const cpuCells = withCpu
    ? ` ${f1(s.cpu)} | ${f2(s.cpu / stats[0].cpu)} | ${v.vs ? f2(s.cpu / plainCpu[v.vs]) : ''} |`
    : '';
  console.log(
    `| ${v.name} | ${f1(s.median)} | ${f1(s.p25)} | ${f1(s.min)} | ${f2(s.median / floor)} | ${vsPlain} |${cpuCells}`,
  );
});
console.log(`\nload average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
if (args.json) {
  writeFileSync(
    args.json,
    JSON.stringify(
      { node: process.version, variants: variants.map((v, i) => ({ name: v.name, ...stats[i] })) },
      null,
      2,
    ),
  );
}
