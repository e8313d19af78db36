import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Journal } from './journal.js';

const journalPath = () => join(mkdtempSync(join(tmpdir(), 'vigil-journal-')), 'decisions.journal');
const mark = (path: string) => JSON.parse(readFileSync(`${path}.delivered`, 'utf8')) as { offset: number };

describe('Journal delivery mark', () => {
  it('is written at most once per interval, the latest within it, and on close', async () => {
    const path = journalPath();
    const { journal } = Journal.open({ path, markIntervalMs: 200 });
    const first = journal.append('{"a":1}');
    journal.markDelivered(first);
    expect(mark(path).offset).toBe(first.offset);
    const second = journal.append('{"a":2}');
    journal.markDelivered(second);
    const third = journal.append('{"a":3}');
    journal.markDelivered(third);
    // Not rewritten per delivery: the file still has the first mark ...
    expect(mark(path).offset).toBe(first.offset);
    // ... and the latest one within the interval.
    await vi.waitFor(() => expect(mark(path).offset).toBe(third.offset), { timeout: 2000, interval: 20 });
    const fourth = journal.append('{"a":4}');
    journal.markDelivered(fourth);
    journal.close();
    expect(mark(path).offset).toBe(fourth.offset);
  });

  it('replays after a crash what was delivered after the last mark written, and nothing before it', () => {
    const path = journalPath();
    const { journal } = Journal.open({ path, markIntervalMs: 60_000 });
    const first = journal.append('{"a":1}');
    journal.markDelivered(first);
    journal.markDelivered(journal.append('{"a":2}\n{"a":3}'));
    // A crash: the file descriptor is gone without `close`, the second mark never reached the disk.
    const { journal: reopened, undelivered } = Journal.open({ path });
    expect(undelivered.lines).toEqual(['{"a":2}', '{"a":3}']);
    reopened.close();
    journal.close();
  });

  it('writes no mark before anything is delivered', () => {
    const path = journalPath();
    const { journal } = Journal.open({ path });
    journal.append('{"a":1}');
    journal.close();
    expect(existsSync(`${path}.delivered`)).toBe(false);
  });
});
