import { IpRangeTable } from './ip-range-table.js';

const WORD_MASK = 0xffff_ffffn;

/**
 * Parses ip-location-db's numeric CSV (`start,end,value[,more...]`, addresses as decimal integers,
 * inclusive ranges, sorted by start) into an {@link IpRangeTable}. `parseValue` maps the third field to
 * the number stored per row; further fields are ignored. A malformed row throws with its line number:
 * a broken data file must fail at startup, not answer wrongly.
 */
export function parseRangeCsv(
  text: string,
  version: 4 | 6,
  parseValue: (field: string) => number | undefined,
): IpRangeTable {
  const words = version === 4 ? 1 : 4;
  let capacity = 1;
  for (let index = text.indexOf('\n'); index >= 0; index = text.indexOf('\n', index + 1)) capacity++;
  const starts = new Uint32Array(capacity * words);
  const ends = new Uint32Array(capacity * words);
  const values = new Uint32Array(capacity);
  let rows = 0;
  let line = 0;
  let position = 0;
  while (position < text.length) {
    line++;
    let lineEnd = text.indexOf('\n', position);
    if (lineEnd < 0) lineEnd = text.length;
    const first = text.indexOf(',', position);
    const second = first < 0 ? -1 : text.indexOf(',', first + 1);
    if (lineEnd > position && !(lineEnd === position + 1 && text[position] === '\r')) {
      if (first < 0 || second < 0 || second > lineEnd)
        throw new Error(`range CSV line ${line}: expected 3 fields`);
      let third = text.indexOf(',', second + 1);
      if (third < 0 || third > lineEnd) third = lineEnd;
      const value = parseValue(text.slice(second + 1, third).trim());
      const start = text.slice(position, first);
      const end = text.slice(first + 1, second);
      if (
        value === undefined ||
        !writeAddress(start, version, starts, rows) ||
        !writeAddress(end, version, ends, rows)
      ) {
        throw new Error(`range CSV line ${line}: malformed row`);
      }
      values[rows] = value;
      rows++;
    }
    position = lineEnd + 1;
  }
  return IpRangeTable.fromWords(
    words,
    starts.slice(0, rows * words),
    ends.slice(0, rows * words),
    values.slice(0, rows),
  );
}

function writeAddress(decimal: string, version: 4 | 6, into: Uint32Array, row: number): boolean {
  if (!/^\d{1,39}$/.test(decimal)) return false;
  if (version === 4) {
    const value = Number(decimal);
    if (value > 0xffff_ffff) return false;
    into[row] = value;
    return true;
  }
  let value = BigInt(decimal);
  if (value >> 128n !== 0n) return false;
  for (let word = 3; word >= 0; word--) {
    into[row * 4 + word] = Number(value & WORD_MASK);
    value >>= 32n;
  }
  return true;
}
