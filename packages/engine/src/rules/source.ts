/** A 1-based position inside an expression's text. */
export interface SourcePosition {
  /** 1-based line number. */
  readonly line: number;
  /** 1-based column, counted in Unicode code points. */
  readonly column: number;
}

/** One problem found while parsing, checking or compiling an expression. */
export interface CelIssue extends SourcePosition {
  /** The stage that found the problem. */
  readonly stage: 'parse' | 'check' | 'cost';
  /** The short message, without position. */
  readonly message: string;
  /** Offset in UTF-16 code units from the start of the text. */
  readonly offset: number;
  /**
   * The message with its position, the source line and a caret under the column, as cel-go prints it:
   *
   * ```
   * ERROR: <input>:1:5: undeclared reference to 'x'
   *  | a + x
   *  | ....^
   * ```
   */
  readonly formatted: string;
}

/** The text of one expression, with the line index needed to report positions. */
export class Source {
  readonly text: string;
  readonly name: string;
  private readonly lineStarts: number[];

  constructor(text: string, name = '<input>') {
    this.text = text;
    this.name = name;
    this.lineStarts = [0];
    for (let index = 0; index < text.length; index++) {
      if (text.charCodeAt(index) === 10) this.lineStarts.push(index + 1);
    }
  }

  /** The 1-based line and code-point column of a UTF-16 offset. */
  position(offset: number): SourcePosition {
    let low = 0;
    let high = this.lineStarts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.lineStarts[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    const lineStart = this.lineStarts[low] ?? 0;
    let column = 1;
    for (let index = lineStart; index < offset && index < this.text.length; index++) {
      const code = this.text.charCodeAt(index);
      // A surrogate pair is one code point: count only its high half.
      if (code < 0xdc00 || code > 0xdfff) column++;
    }
    return { line: low + 1, column };
  }

  /** The text of a 1-based line, without its line break. */
  lineText(line: number): string {
    const start = this.lineStarts[line - 1] ?? this.text.length;
    const next = this.lineStarts[line];
    const end = next === undefined ? this.text.length : next - 1;
    return this.text.slice(start, end).replace(/\r$/, '');
  }

  /** Builds an issue at an offset, with the caret-style formatted message. */
  issue(stage: CelIssue['stage'], offset: number, message: string): CelIssue {
    const { line, column } = this.position(offset);
    const caretLine = `${'.'.repeat(Math.max(0, column - 1))}^`;
    const formatted = `ERROR: ${this.name}:${line}:${column}: ${message}\n | ${this.lineText(line)}\n | ${caretLine}`;
    return { stage, message, offset, line, column, formatted };
  }
}
