#!/usr/bin/env node
// Decoding one SCGI header block (the netstring's payload): @tsgi/scgi's hand-written
// decoder against the named alternative from the design card, binary-parser 2.3.0
// (`string zeroTerminated` name/value pairs in an `array readUntil: 'eof'`).
//
//   pnpm build && node bench/scgi-headers/run.mjs [--rounds N] [--ops N]
//   (or only what it needs: pnpm -r --filter @tsgi/core --filter @tsgi/scgi run build)
//
// The block is the kind lighttpd 1.4 mod_scgi sends for a browser GET: 30 headers,
// CONTENT_LENGTH first and SCGI=1 last, ~930 bytes (research/binary-parser-scgi-evaluation.md).
// Rounds alternate the two decoders so drift hits both; each figure is the median of its
// rounds and the ratio is the median of the per-round ratios. Both decoders get the same
// Buffer and must produce the same 30 pairs. Ours also checks the SCGI rules
// (CONTENT_LENGTH first and all digits, SCGI=1, no duplicates); binary-parser checks none.
// Results and the command: docs/decisions/0002-scgi-hand-written-decoder.md.
import { Buffer } from 'node:buffer';
import os from 'node:os';
import { Parser } from 'binary-parser';
import { decodeHeaders } from '../../packages/scgi/dist/index.js';

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i], process.argv[i + 1]);
const ROUNDS = Number(args.get('--rounds') ?? 11);
const OPS = Number(args.get('--ops') ?? 100_000);

/** What lighttpd 1.4.69 mod_scgi sends for a browser GET (order as captured, values typical). */
const HEADERS = [
  ['CONTENT_LENGTH', '0'],
  ['SERVER_SOFTWARE', 'lighttpd/1.4.69'],
  ['SERVER_NAME', 'www.example.org'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['SERVER_PORT', '443'],
  ['SERVER_ADDR', '192.0.2.10'],
  ['REMOTE_PORT', '51234'],
  ['REMOTE_ADDR', '198.51.100.23'],
  ['SCRIPT_NAME', '/app'],
  ['PATH_INFO', '/articles/2024/scgi-headers'],
  ['SCRIPT_FILENAME', '/srv/www/app'],
  ['DOCUMENT_ROOT', '/srv/www'],
  ['REQUEST_URI', '/app/articles/2024/scgi-headers?page=2&sort=date'],
  ['QUERY_STRING', 'page=2&sort=date'],
  ['REQUEST_METHOD', 'GET'],
  ['REDIRECT_STATUS', '200'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REQUEST_SCHEME', 'https'],
  ['HTTPS', 'on'],
  ['HTTP_HOST', 'www.example.org'],
  ['HTTP_USER_AGENT', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'],
  ['HTTP_ACCEPT', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['HTTP_ACCEPT_LANGUAGE', 'en-US,en;q=0.5'],
  ['HTTP_ACCEPT_ENCODING', 'gzip, deflate, br'],
  ['HTTP_REFERER', 'https://www.example.org/app/'],
  ['HTTP_COOKIE', 'session=7f3a9c2e41b84d0e; theme=dark'],
  ['HTTP_UPGRADE_INSECURE_REQUESTS', '1'],
  ['HTTP_SEC_FETCH_DEST', 'document'],
  ['HTTP_SEC_FETCH_MODE', 'navigate'],
  ['SCGI', '1'],
];

function block(pairs) {
  const parts = [];
  for (const [n, v] of pairs) {
    parts.push(Buffer.isBuffer(n) ? n : Buffer.from(n, 'latin1'), Buffer.of(0));
    parts.push(Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1'), Buffer.of(0));
  }
  return Buffer.concat(parts);
}

const BLOCK = block(HEADERS);

// The design card's binary-parser shape. `latin1` is the only encoding its allow-list
// accepts that does not replace bytes (utf8 turns invalid bytes into U+FFFD; `binary`
// is accepted by the allow-list and then throws at parse time).
const pair = new Parser()
  .string('name', { zeroTerminated: true, encoding: 'latin1' })
  .string('value', { zeroTerminated: true, encoding: 'latin1' });
const bpParser = new Parser().array('pairs', { type: pair, readUntil: 'eof' });

const decoders = {
  'tsgi hand-written (decodeHeaders)': (b) => decodeHeaders(b).params,
  'binary-parser 2.3.0 (string zeroTerminated in array readUntil eof)': (b) =>
    bpParser.parse(b).pairs.map((p) => [p.name, p.value]),
};
// The same parse without the map to [name, value] pairs: binary-parser's own cost alone,
// so the comparison cannot be blamed on the adapter code. Timed, not checked for output.
const timedOnly = {
  'binary-parser 2.3.0, parse() only (objects, no pairs)': (b) => bpParser.parse(b).pairs,
};

// Same output on the realistic block.
const expected = JSON.stringify(HEADERS);
for (const [name, decode] of Object.entries(decoders)) {
  const got = JSON.stringify(decode(BLOCK));
  if (got !== expected) throw new Error(`${name} decoded the block differently:\n${got}`);
}

// Byte-exactness: values holding 0x80 and 0xFF (and 0xE9) must come back as the same bytes
// (one code point per byte, U+0080 and U+00FF; windows-1252 would give U+20AC for 0x80).
const RAW = Buffer.from([0x2f, 0x80, 0xe9, 0xff, 0x9f]);
const exactBlock = block([
  ['CONTENT_LENGTH', '0'],
  ['SCGI', '1'],
  ['PATH_INFO', RAW],
  ['HTTP_X_BYTES', Buffer.from([0x80, 0xff])],
]);
const exactness = {};
for (const [name, decode] of Object.entries(decoders)) {
  try {
    const pairs = decode(exactBlock);
    const back = Buffer.from(pairs[2][1], 'latin1');
    const back2 = Buffer.from(pairs[3][1], 'latin1');
    const ok =
      back.equals(RAW) && back2.equals(Buffer.from([0x80, 0xff])) && pairs[2][1].length === 5;
    exactness[name] = ok
      ? 'byte-exact'
      : `NOT byte-exact: 0x80 0xE9 0xFF 0x9F -> ${[...pairs[2][1].slice(1)].map((c) => `U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`).join(' ')}`;
  } catch (e) {
    exactness[name] = `threw ${e.name}: ${e.message}`;
  }
}

let sink = 0;
function time(decode) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < OPS; i++) sink += decode(BLOCK).length;
  return Number(process.hrtime.bigint() - t0) / OPS;
}

const all = { ...decoders, ...timedOnly };
// Warm up all (JIT, binary-parser's compiled function).
for (const decode of Object.values(all)) for (let i = 0; i < 3; i++) time(decode);

const names = Object.keys(all);
const results = Object.fromEntries(names.map((n) => [n, []]));
const ratios = [];
const rawRatios = [];
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? names : [...names].reverse();
  const round = {};
  for (const n of order) round[n] = time(all[n]);
  for (const n of names) results[n].push(round[n]);
  ratios.push(round[names[1]] / round[names[0]]);
  rawRatios.push(round[names[2]] / round[names[0]]);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};
const fmt = (x) => x.toFixed(0).padStart(7);

console.log(
  `node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.platform()} ${os.arch()}`,
);
console.log(
  `block: ${HEADERS.length} headers, ${BLOCK.length} bytes; ${ROUNDS} rounds x ${OPS} ops`,
);
console.log('');
console.log(
  'decoder                                                              ns/op   (min-max)',
);
for (const n of names) {
  const xs = results[n];
  console.log(
    `${n.padEnd(66)} ${fmt(median(xs))}   (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`,
  );
}
console.log('');
console.log(`ratio binary-parser / hand-written: ${median(ratios).toFixed(2)}x (median of rounds)`);
console.log(
  `ratio binary-parser parse() only / hand-written: ${median(rawRatios).toFixed(2)}x (median of rounds)`,
);
console.log('');
console.log('values with 0x80 and 0xFF:');
for (const n of Object.keys(decoders)) console.log(`  ${n}: ${exactness[n]}`);
if (sink === 0) console.log('(unreachable)');
