import { randomFillSync } from 'node:crypto';

/** Random bytes are drawn in blocks, so an id costs a slice of a buffer rather than a system call. */
const pool = Buffer.alloc(16 * 512);
let poolOffset = pool.length;
const hex = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

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
  const b = (index: number) => hex[pool[at + index] as number] as string;
  return `${b(0)}${b(1)}${b(2)}${b(3)}-${b(4)}${b(5)}-${b(6)}${b(7)}-${b(8)}${b(9)}-${b(10)}${b(11)}${b(12)}${b(13)}${b(14)}${b(15)}`;
}
