import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

  it('starts a new file once everything is delivered and it is long, deleting the old one in the background', async () => {
    const path = journalPath();
    const retired = () => readdirSync(dirname(path)).filter((name) => name.includes('.retired-'));
    const { journal } = Journal.open({ path, rotationBytes: 1 });
    journal.markDelivered(journal.append('{"a":1}\n{"a":2}'));
    // Rotated: the journal is a header line of generation 2, and the old file goes.
    const header = readFileSync(path, 'utf8');
    expect(header.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(header).generation).toBe(2);
    await vi.waitFor(() => expect(retired()).toEqual([]));
    // Appends go to the new file, and after a crash the undelivered ones are replayed from it.
    journal.append('{"a":3}');
    const { journal: reopened, undelivered } = Journal.open({ path });
    expect(undelivered.lines).toEqual(['{"a":3}']);
    reopened.close();
    journal.close();
    // A journal a crashed process left renamed away is removed on the next open.
    writeFileSync(`${path}.retired-9`, '{"a":0}\n');
    Journal.open({ path }).journal.close();
    expect(retired()).toEqual([]);
  });

  it('writes no mark before anything is delivered', () => {
    const path = journalPath();
    const { journal } = Journal.open({ path });
    journal.append('{"a":1}');
    journal.close();
    expect(existsSync(`${path}.delivered`)).toBe(false);
  });
});
