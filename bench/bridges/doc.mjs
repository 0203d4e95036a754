// DOC: the 1 KiB JSON document GET BASE/json answers (the same bytes from every target).
const doc = {
  items: Array.from({ length: 12 }, (_, i) => ({
    id: i,
    name: `item ${i}`,
    tags: ['alpha', 'beta', 'gamma'],
    price: 10 + i * 1.25,
    ok: i % 2 === 0,
  })),
};

// Padded to exactly 1024 bytes of JSON.
doc.pad = '';
doc.pad = '-'.repeat(1024 - JSON.stringify(doc).length);
export const DOC = doc;
