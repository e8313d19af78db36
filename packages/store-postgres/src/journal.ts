import {
  closeSync,
  existsSync,
  fdatasyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlink,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A journal that a rotation renamed away is `<journal><suffix><generation>` until deleted. */
const retiredSuffix = '.retired-';

export interface JournalOptions {
  /** The journal file. Its delivery mark is kept beside it, in `<path>.delivered`. */
  path: string;
  /**
   * `normal` (default): an append survives a crash of the process (SIGKILL), as its bytes are in
   * the operating system's cache. `full` also fsyncs every append, to survive a power loss.
   */
  sync?: 'normal' | 'full';
  /** Length at which the journal starts afresh once everything in it is delivered (default 64 MiB). */
  rotationBytes?: number;
  /**
   * Longest time the delivery mark on disk may lag the deliveries, ms (default 1 000). The mark is
   * written at most this often (and on rotation and `close`): after a crash the lines delivered
   * since are replayed, which the store ignores, and a busy log does not rewrite a file per batch.
   */
  markIntervalMs?: number;
}

/** A place in the journal: everything before `offset` of `generation`. */
export interface JournalPosition {
  generation: number;
  offset: number;
}

/** Lines found in the journal past its delivery mark when it was opened, and where they end. */
export interface Undelivered {
  lines: string[];
  end: JournalPosition;
}

const defaultRotationBytes = 64 * 1024 * 1024;
const defaultMarkIntervalMs = 1_000;

/**
 * An append-only local file of newline-terminated lines (one record each), written with one
 * `write(2)` per call, and a delivery mark: how far a downstream store has taken it. A store that
 * is written behind the journal replays the lines past the mark after a crash; the store must be
 * idempotent for them, as a line delivered just before a crash may not have been marked yet.
 *
 * The file starts with a header line naming its generation. Once everything in it is delivered
 * and it is longer than `rotationBytes`, a new generation begins in a new file (the old one is
 * renamed away and deleted in the background), so it does not grow without end while the store
 * keeps up.
 *
 * Nothing here knows about the store: the SQLite decision log could keep its mark in the same
 * transaction as its rows instead of the mark file (pass positions through and never call
 * `markDelivered`), and use `open`, `append` and the rotation from here.
 */
export class Journal {
  readonly #path: string;
  readonly #markPath: string;
  readonly #sync: 'normal' | 'full';
  readonly #rotationBytes: number;
  readonly #markIntervalMs: number;
  #fd: number;
  #generation: number;
  #written: number;
  #delivered: number;
  /** The delivery mark last written to disk, and when. */
  #markWritten: JournalPosition;
  #markWrittenAt = 0;
  #markTimer: NodeJS.Timeout | undefined;

  private constructor(
    options: JournalOptions,
    fd: number,
    generation: number,
    written: number,
    delivered: number,
  ) {
    this.#path = options.path;
    this.#markPath = `${options.path}.delivered`;
    this.#sync = options.sync ?? 'normal';
    this.#rotationBytes = options.rotationBytes ?? defaultRotationBytes;
    this.#markIntervalMs = options.markIntervalMs ?? defaultMarkIntervalMs;
    this.#fd = fd;
    this.#generation = generation;
    this.#written = written;
    this.#delivered = delivered;
    this.#markWritten = { generation, offset: delivered };
  }

  /**
   * Opens (or creates) the journal and returns the lines past its delivery mark, which the caller
   * must deliver before it marks anything later. A last line cut short by a crash (no newline) was
   * never acknowledged; it is dropped.
   */
  static open(options: JournalOptions): { journal: Journal; undelivered: Undelivered } {
    // Journals a rotation renamed away hold only delivered lines.
    const directory = dirname(options.path);
    const prefix = `${basename(options.path)}${retiredSuffix}`;
    for (const name of readdirSync(directory)) {
      if (name.startsWith(prefix)) rmSync(join(directory, name), { force: true });
    }
    const markPath = `${options.path}.delivered`;
    const mark = existsSync(markPath) ? readMark(readFileSync(markPath, 'utf8')) : undefined;
    let generation = 0;
    let lines: string[] = [];
    let end = 0;
    if (existsSync(options.path)) {
      const text = readFileSync(options.path);
      const headerEnd = text.indexOf(10);
      const header = headerEnd < 0 ? undefined : readHeader(text.subarray(0, headerEnd).toString());
      if (header !== undefined) {
        generation = header.generation;
        const lastNewline = text.lastIndexOf(10);
        end = lastNewline + 1;
        const from = mark?.generation === generation ? Math.max(mark.offset, headerEnd + 1) : headerEnd + 1;
        if (end > from) lines = text.subarray(from, lastNewline).toString('utf8').split('\n');
      }
    }
    if (generation === 0) {
      // No journal, or one without a whole header: start a new one after the mark's generation.
      generation = (mark?.generation ?? 0) + 1;
      const header = headerLine(generation);
      writeFileSync(options.path, header);
      end = Buffer.byteLength(header);
    } else {
      // Drop a partial last line, so that the next append starts on a line of its own.
      const fd = openSync(options.path, 'r+');
      try {
        ftruncateSync(fd, end);
      } finally {
        closeSync(fd);
      }
    }
    const fd = openSync(options.path, 'a');
    const delivered = lines.length === 0 ? end : end - byteLength(lines);
    const journal = new Journal(options, fd, generation, end, delivered);
    return { journal, undelivered: { lines, end: { generation, offset: end } } };
  }

  /** Where the journal ends now. */
  position(): JournalPosition {
    return { generation: this.#generation, offset: this.#written };
  }

  /** True when every line written has been marked delivered. */
  allDelivered(): boolean {
    return this.#delivered >= this.#written;
  }

  /**
   * Appends `lines` (joined by newlines, without the last one) with one write; throws when the
   * write fails. Returns where the journal ends after them.
   */
  append(lines: string): JournalPosition {
    const text = `${lines}\n`;
    writeSync(this.#fd, text);
    if (this.#sync === 'full') fdatasyncSync(this.#fd);
    this.#written += Buffer.byteLength(text);
    return this.position();
  }

  /**
   * Records that the store has every line up to `position` (callers deliver in journal order), and
   * starts a new generation when that is everything and the journal is long. The mark reaches the
   * disk at once on rotation, otherwise within `markIntervalMs`.
   */
  markDelivered(position: JournalPosition): void {
    if (position.generation !== this.#generation || position.offset <= this.#delivered) return;
    this.#delivered = position.offset;
    if (this.#delivered >= this.#written && this.#written >= this.#rotationBytes) {
      // A new file, the old one renamed away and deleted in the background: truncating it in place
      // made the kernel free its blocks on the event loop (100-200 ms for 64-100 MiB).
      const retired = `${this.#path}${retiredSuffix}${this.#generation}`;
      this.#generation += 1;
      renameSync(this.#path, retired);
      closeSync(this.#fd);
      this.#fd = openSync(this.#path, 'a');
      unlink(retired, () => {
        // One left behind (the process died first) is removed on the next open.
      });
      const header = headerLine(this.#generation);
      writeSync(this.#fd, header);
      this.#written = Buffer.byteLength(header);
      this.#delivered = this.#written;
      this.#writeMark();
      return;
    }
    if (Date.now() - this.#markWrittenAt >= this.#markIntervalMs) this.#writeMark();
    else if (this.#markTimer === undefined) {
      this.#markTimer = setTimeout(
        () => {
          this.#markTimer = undefined;
          try {
            this.#writeMark();
          } catch {
            // The next delivery or `close` writes it; a stale mark only means replays PostgreSQL ignores.
          }
        },
        this.#markIntervalMs - (Date.now() - this.#markWrittenAt),
      );
      this.#markTimer.unref();
    }
  }

  /** Writes the delivery mark if it moved since it was last written. */
  #writeMark(): void {
    clearTimeout(this.#markTimer);
    this.#markTimer = undefined;
    if (this.#markWritten.generation === this.#generation && this.#markWritten.offset === this.#delivered)
      return;
    const mark = { generation: this.#generation, offset: this.#delivered };
    // Written aside and renamed over, so a crash leaves the old mark or the new one, whole.
    const temporary = `${this.#markPath}.tmp`;
    writeFileSync(temporary, JSON.stringify(mark));
    renameSync(temporary, this.#markPath);
    this.#markWritten = mark;
    this.#markWrittenAt = Date.now();
  }

  /** Writes the delivery mark (if it moved) and closes the file. */
  close(): void {
    if (this.#fd < 0) return;
    try {
      this.#writeMark();
    } finally {
      closeSync(this.#fd);
      this.#fd = -1;
    }
  }

  /** The journal file's path, for messages. */
  get path(): string {
    return this.#path;
  }
}

function headerLine(generation: number): string {
  return `${JSON.stringify({ vigil_journal: 1, generation })}\n`;
}

function readHeader(text: string): { generation: number } | undefined {
  try {
    const header = JSON.parse(text) as { generation?: unknown } | null;
    const generation = header?.generation;
    return typeof generation === 'number' && Number.isSafeInteger(generation) && generation > 0
      ? { generation }
      : undefined;
  } catch {
    return undefined;
  }
}

function readMark(text: string): JournalPosition | undefined {
  try {
    const mark = JSON.parse(text) as Partial<JournalPosition> | null;
    return typeof mark?.generation === 'number' && typeof mark.offset === 'number'
      ? { generation: mark.generation, offset: mark.offset }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Bytes of `lines` as written: each with its newline. */
function byteLength(lines: string[]): number {
  let bytes = 0;
  for (const line of lines) bytes += Buffer.byteLength(line) + 1;
  return bytes;
}
