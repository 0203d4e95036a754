// Rounds, medians, ratios and tables, and the bench's command line. Every comparison is
// made inside one run: targets are interleaved round by round (the order rotates each
// round) so drift and other load on the machine hit all of them alike; ratios are the
// median of the per-round ratios.
import os from 'node:os';

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * parseArgs: `--quick`, `--rounds N`, `--duration S`, `--connections N`, `--upload-mb N`,
 * `--read-rate N`, `--only a,b` (workload names; `defaults.only`, a Set, when not given), plus
 * whatever `extraFlags` names (flags without a value).
 */
export function parseArgs(argv, defaults, extraFlags = []) {
  const { only, ...rest } = defaults;
  const opts = { ...rest, quick: false, only };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--rounds') opts.rounds = num();
    else if (a === '--duration') opts.duration = num();
    else if (a === '--connections') opts.connections = num();
    else if (a === '--upload-mb') opts.uploadMb = num();
    else if (a === '--read-rate') opts.readRate = num();
    else if (a === '--only') opts.only = new Set(argv[++i].split(','));
    else if (extraFlags.includes(a)) opts[a.slice(2)] = true;
    else if (a === '--help' || a === '-h') {
      opts.help = true;
    } else throw new Error(`unknown argument ${a}`);
  }
  if (opts.quick) {
    opts.rounds = argv.includes('--rounds') ? opts.rounds : 1;
    opts.duration = argv.includes('--duration') ? opts.duration : 2;
    opts.uploadMb = argv.includes('--upload-mb') ? opts.uploadMb : 20;
  }
  return opts;
}

/**
 * benchArgs: the command line of bench/NAME/run.mjs. `--json FILE` and, with `baseline: true`,
 * `--baseline DIR` are taken out; the rest goes through parseArgs(defaults); `--help` prints
 * `usage` and exits. Returns { opts, want(workload), jsonPath, baseline, commandLine (all of
 * it, as given), rest (without --json and --baseline) }.
 */
export function benchArgs(
  usage,
  defaults,
  { baseline = false, argv = process.argv.slice(2) } = {},
) {
  const rest = [...argv];
  const take = (flag) => {
    const at = rest.indexOf(flag);
    return at >= 0 ? rest.splice(at, 2)[1] : undefined;
  };
  const jsonPath = take('--json');
  const baselineDir = baseline ? take('--baseline') : undefined;
  const opts = parseArgs(rest, defaults);
  if (opts.help) {
    console.log(usage);
    process.exit(0);
  }
  return {
    opts,
    want: (k) => !opts.only || opts.only.has(k),
    jsonPath,
    baseline: baselineDir,
    commandLine: argv.join(' '),
    rest: rest.join(' '),
  };
}

/**
 * startReport: the report of bench/NAME/run.mjs. `out(line)` prints a line and keeps it in
 * `lines`; `json` (what --json writes) starts as { machineAtStart, options, ...sections }.
 * Prints the report's head: the bench and the time, the command, the machine (and `note`).
 */
export function startReport(name, { commandLine, opts, sections = {}, note }) {
  const lines = [];
  const out = (line = '') => {
    console.log(line);
    lines.push(line);
  };
  const json = {
    machineAtStart: machine(),
    options: { ...opts, only: opts.only && [...opts.only] },
    ...sections,
  };
  out(`# bench/${name}: ${new Date().toISOString()}`);
  out(`command: node bench/${name}/run.mjs ${commandLine}`.trim());
  out(`machine at start: ${json.machineAtStart}${note ? `, ${note}` : ''}`);
  return { out, lines, json };
}

/** machine: one line about the machine and its load (printed at start and at the end). */
export function machine() {
  const [l1, l5, l15] = os.loadavg();
  return `node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, load average ${l1.toFixed(2)} ${l5.toFixed(2)} ${l15.toFixed(2)}`;
}

/**
 * interleave: `rounds` rounds; in each, `measure(target)` runs once per target, the order
 * rotated by one each round. Resolves to { [target.name]: number[] } (one value per round).
 */
export async function interleave(targets, rounds, measure, log = console.log) {
  const results = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]);
    const parts = [];
    for (const t of order) {
      const v = await measure(t);
      results[t.name][r] = v;
      parts.push(`${t.name} ${fmt(v)}`);
    }
    log(`  round ${r + 1}/${rounds}: ${parts.join(', ')}`);
  }
  return results;
}

export const fmt = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

/** ratio: the median of per-round ratios a[i] / b[i]. */
export function ratio(a, b) {
  const rs = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] > 0) rs.push(a[i] / b[i]);
  }
  return median(rs);
}

/**
 * table: a markdown table of `results` (req/s per round): median, min, max and the ratio
 * to `reference` (median of per-round ratios), and the error count. Returns the lines.
 */
export function table(title, results, reference, errors = {}, unit = 'req/s') {
  const lines = [];
  lines.push(`\n### ${title}`);
  lines.push(`| target | median ${unit} | min | max | vs ${reference} | errors |`);
  lines.push('|---|---:|---:|---:|---:|---:|');
  const ref = results[reference];
  for (const [name, xs] of Object.entries(results)) {
    const ok = xs.filter(Number.isFinite);
    const r = ref && name !== reference ? ratio(xs, ref) : name === reference ? 1 : Number.NaN;
    lines.push(
      `| ${name} | ${fmt(median(xs))} | ${ok.length ? fmt(Math.min(...ok)) : '-'} | ${ok.length ? fmt(Math.max(...ok)) : '-'} | ${fmt(r, 2)}x | ${errors[name] ?? 0} |`,
    );
  }
  return lines;
}

/** verdict: `name: value (target op limit) PASS|FAIL`. */
export function verdict(label, value, op, limit, digits = 2) {
  if (!Number.isFinite(value)) return `${label}: not measured`;
  const ok = op === '>=' ? value >= limit : value <= limit;
  return `${label}: ${value.toFixed(digits)} (target ${op} ${limit}) ${ok ? 'PASS' : 'FAIL'}`;
}
