import { randomFillSync } from 'node:crypto';

/** Random bytes are drawn in blocks, so an id costs a slice of a buffer rather than a system call. */
const pool = Buffer.alloc(16 * 512);
let poolOffset = pool.length;
/** The id's text is written here as ASCII and read out as one flat string (no concatenation). */
const text = Buffer.alloc(36, '-');
/** Both hex digits of a byte, as two ASCII codes: the first in the low byte. */
const hexPairs = Uint16Array.from({ length: 256 }, (_, byte) => {
  const digits = byte.toString(16).padStart(2, '0');
  return digits.charCodeAt(0) | (digits.charCodeAt(1) << 8);
});
/** Where each of the 16 bytes' two digits go in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
const places = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix time in ms, then 74 random bits. Ids made later
 * sort later, so the decision log's index on them grows at its end instead of at random pages,
 * which makes each insert cheaper; the random part keeps them unguessable.
 */
export function timeOrderedId(now: number = Date.now()): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += 16;
  let time = now;
  for (let index = 5; index >= 0; index -= 1) {
    pool[at + index] = time % 256;
    time = Math.floor(time / 256);
  }
  pool[at + 6] = 0x70 | ((pool[at + 6] as number) & 0x0f);
  pool[at + 8] = 0x80 | ((pool[at + 8] as number) & 0x3f);
  for (let index = 0; index < 16; index++) {
    const pair = hexPairs[pool[at + index] as number] as number;
    const place = places[index] as number;
    text[place] = pair & 0xff;
    text[place + 1] = pair >> 8;
  }
  return text.toString('latin1', 0, 36);
}
