/** The kinds of token the lexer produces. */
export type TokenKind =
  | 'int'
  | 'uint'
  | 'double'
  | 'string'
  | 'bytes'
  | 'ident'
  | 'quoted_ident'
  | 'punct'
  | 'eof';

/** One token of CEL text. */
export interface Token {
  readonly kind: TokenKind;
  /** Operator or punctuation text for `punct`, the name for identifiers. */
  readonly text: string;
  /** The literal value: bigint for int/uint, number for double, string, or bytes. */
  readonly value: bigint | number | string | Uint8Array | undefined;
  /** UTF-16 offset of the token's first character. */
  readonly offset: number;
}

/** Receives a lexical error at an offset. */
export type LexErrorSink = (offset: number, message: string) => void;

const PUNCTUATION_TWO = new Set(['==', '!=', '<=', '>=', '&&', '||']);
const PUNCTUATION_ONE = new Set([
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
  '!',
  '?',
  ':',
  '.',
  ',',
  '[',
  ']',
  '(',
  ')',
  '{',
  '}',
]);

/** Operators users often type from other languages, with the CEL operator they meant. */
const MISTYPED_OPERATORS: Record<string, string> = { '=': '==', '&': '&&', '|': '||' };

const SIMPLE_ESCAPES: Record<string, number> = {
  a: 7,
  b: 8,
  f: 12,
  n: 10,
  r: 13,
  t: 9,
  v: 11,
  '\\': 92,
  '?': 63,
  '"': 34,
  "'": 39,
  '`': 96,
};

/**
 * Returns the engine's canonical ("internalized") copy of a string. Names sliced from the source are
 * not internalized, and V8 must look such a key up in its string table on every property access;
 * property keys are always internalized, so a round trip through an object's keys does it once.
 */
export function internalize(text: string): string {
  const holder: Record<string, true> = {};
  holder[text] = true;
  return Object.keys(holder)[0] ?? text;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isHexDigit(code: number): boolean {
  return isDigit(code) || (code >= 97 && code <= 102) || (code >= 65 && code <= 70);
}

function isIdentStart(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || code === 95;
}

function isIdentPart(code: number): boolean {
  return isIdentStart(code) || isDigit(code);
}

function utf8Encode(codePoint: number, out: number[]): void {
  if (codePoint < 0x80) out.push(codePoint);
  else if (codePoint < 0x800) out.push(0xc0 | (codePoint >> 6), 0x80 | (codePoint & 63));
  else if (codePoint < 0x10000)
    out.push(0xe0 | (codePoint >> 12), 0x80 | ((codePoint >> 6) & 63), 0x80 | (codePoint & 63));
  else
    out.push(
      0xf0 | (codePoint >> 18),
      0x80 | ((codePoint >> 12) & 63),
      0x80 | ((codePoint >> 6) & 63),
      0x80 | (codePoint & 63),
    );
}

/**
 * Splits CEL text into tokens. Every lexical error goes to `onError` and the lexer goes on, so the
 * parser can report later errors too.
 */
export function tokenize(text: string, onError: LexErrorSink): Token[] {
  const tokens: Token[] = [];
  let position = 0;
  const length = text.length;

  while (position < length) {
    const code = text.charCodeAt(position);
    // Whitespace: space, tab, line feed, form feed, carriage return.
    if (code === 32 || code === 9 || code === 10 || code === 12 || code === 13) {
      position++;
      continue;
    }
    if (code === 47 && text.charCodeAt(position + 1) === 47) {
      while (position < length && text.charCodeAt(position) !== 10) position++;
      continue;
    }
    const start = position;
    if (isDigit(code) || (code === 46 && isDigit(text.charCodeAt(position + 1)))) {
      position = lexNumber(text, position, tokens, onError);
      continue;
    }
    if (isIdentStart(code)) {
      // String prefixes: r, b, rb, br in any case, directly followed by a quote.
      let prefixEnd = position;
      while (prefixEnd < length && prefixEnd - position < 2 && /[rRbB]/.test(text[prefixEnd] ?? ''))
        prefixEnd++;
      for (let end = position + 1; end <= prefixEnd; end++) {
        const quote = text.charCodeAt(end);
        const prefix = text.slice(position, end).toLowerCase();
        if (
          (quote === 34 || quote === 39) &&
          (prefix === 'r' || prefix === 'b' || prefix === 'rb' || prefix === 'br')
        ) {
          position = lexString(text, end, prefix.includes('r'), prefix.includes('b'), start, tokens, onError);
          break;
        }
      }
      if (position !== start) continue;
      while (position < length && isIdentPart(text.charCodeAt(position))) position++;
      const name = internalize(text.slice(start, position));
      tokens.push({ kind: 'ident', text: name, value: undefined, offset: start });
      continue;
    }
    if (code === 34 || code === 39) {
      position = lexString(text, position, false, false, start, tokens, onError);
      continue;
    }
    if (code === 96) {
      const close = text.indexOf('`', position + 1);
      const newline = text.indexOf('\n', position + 1);
      if (close < 0 || (newline >= 0 && newline < close)) {
        onError(start, 'unterminated quoted identifier');
        position = newline < 0 ? length : newline;
        continue;
      }
      const name = internalize(text.slice(position + 1, close));
      if (!/^[A-Za-z0-9_.\-/ ]+$/.test(name)) onError(start, `invalid quoted identifier '${name}'`);
      tokens.push({ kind: 'quoted_ident', text: name, value: undefined, offset: start });
      position = close + 1;
      continue;
    }
    const two = text.slice(position, position + 2);
    if (PUNCTUATION_TWO.has(two)) {
      tokens.push({ kind: 'punct', text: two, value: undefined, offset: start });
      position += 2;
      continue;
    }
    const one = text[position] ?? '';
    if (PUNCTUATION_ONE.has(one)) {
      tokens.push({ kind: 'punct', text: one, value: undefined, offset: start });
      position++;
      continue;
    }
    const codePoint = text.codePointAt(position) ?? code;
    const character = String.fromCodePoint(codePoint);
    const hint = MISTYPED_OPERATORS[character];
    onError(
      start,
      `Syntax error: token recognition error at: '${character}'${hint === undefined ? '' : `; did you mean '${hint}'?`}`,
    );
    position += codePoint > 0xffff ? 2 : 1;
  }
  tokens.push({ kind: 'eof', text: '<EOF>', value: undefined, offset: length });
  return tokens;
}

function lexNumber(text: string, start: number, tokens: Token[], onError: LexErrorSink): number {
  let position = start;
  const length = text.length;
  if (text[position] === '0' && (text[position + 1] === 'x' || text[position + 1] === 'X')) {
    position += 2;
    const digitsStart = position;
    while (position < length && isHexDigit(text.charCodeAt(position))) position++;
    if (position === digitsStart) onError(start, 'Syntax error: invalid hexadecimal literal');
    const digits = text.slice(digitsStart, position) || '0';
    const value = BigInt(`0x${digits}`);
    if (text[position] === 'u' || text[position] === 'U') {
      position++;
      tokens.push({ kind: 'uint', text: text.slice(start, position), value, offset: start });
    } else {
      tokens.push({ kind: 'int', text: text.slice(start, position), value, offset: start });
    }
    return position;
  }
  while (position < length && isDigit(text.charCodeAt(position))) position++;
  let isDouble = false;
  if (text[position] === '.' && isDigit(text.charCodeAt(position + 1))) {
    isDouble = true;
    position++;
    while (position < length && isDigit(text.charCodeAt(position))) position++;
  }
  if (text[position] === 'e' || text[position] === 'E') {
    let exponent = position + 1;
    if (text[exponent] === '+' || text[exponent] === '-') exponent++;
    if (isDigit(text.charCodeAt(exponent))) {
      isDouble = true;
      position = exponent;
      while (position < length && isDigit(text.charCodeAt(position))) position++;
    }
  }
  const literal = text.slice(start, position);
  if (isDouble) {
    tokens.push({ kind: 'double', text: literal, value: Number(literal), offset: start });
    return position;
  }
  const value = BigInt(literal);
  if (text[position] === 'u' || text[position] === 'U') {
    position++;
    tokens.push({ kind: 'uint', text: text.slice(start, position), value, offset: start });
  } else {
    tokens.push({ kind: 'int', text: literal, value, offset: start });
  }
  return position;
}

function lexString(
  text: string,
  quoteStart: number,
  raw: boolean,
  bytes: boolean,
  tokenStart: number,
  tokens: Token[],
  onError: LexErrorSink,
): number {
  const quoteChar = text[quoteStart] ?? '"';
  const triple = text.slice(quoteStart, quoteStart + 3) === quoteChar.repeat(3);
  const delimiter = triple ? quoteChar.repeat(3) : quoteChar;
  let position = quoteStart + delimiter.length;
  const length = text.length;
  let stringOut = '';
  const bytesOut: number[] = [];
  const appendCodePoint = (codePoint: number): void => {
    if (bytes) utf8Encode(codePoint, bytesOut);
    else stringOut += String.fromCodePoint(codePoint);
  };
  let closed = false;
  while (position < length) {
    if (text.startsWith(delimiter, position)) {
      position += delimiter.length;
      closed = true;
      break;
    }
    const character = text[position] ?? '';
    if (!triple && (character === '\n' || character === '\r')) break;
    if (character === '\\' && !raw) {
      position = lexEscape(text, position, bytes, appendCodePoint, bytesOut, onError);
      continue;
    }
    if (raw && character === '\\' && position + 1 < length) {
      // In raw strings a backslash is literal but still keeps the next quote from closing the string.
      const next = text[position + 1] ?? '';
      if (next === quoteChar) {
        appendCodePoint(92);
        appendCodePoint(next.charCodeAt(0));
        position += 2;
        continue;
      }
    }
    const codePoint = text.codePointAt(position) ?? 0;
    appendCodePoint(codePoint);
    position += codePoint > 0xffff ? 2 : 1;
  }
  if (!closed) onError(tokenStart, 'Syntax error: unterminated string literal');
  tokens.push(
    bytes
      ? {
          kind: 'bytes',
          text: text.slice(tokenStart, position),
          value: Uint8Array.from(bytesOut),
          offset: tokenStart,
        }
      : {
          kind: 'string',
          text: text.slice(tokenStart, position),
          // Short literals are internalized so comparisons with host strings are pointer checks.
          value: stringOut.length <= 256 ? internalize(stringOut) : stringOut,
          offset: tokenStart,
        },
  );
  return position;
}

function lexEscape(
  text: string,
  start: number,
  bytes: boolean,
  appendCodePoint: (codePoint: number) => void,
  bytesOut: number[],
  onError: LexErrorSink,
): number {
  const kind = text[start + 1] ?? '';
  const simple = SIMPLE_ESCAPES[kind];
  if (simple !== undefined) {
    appendCodePoint(simple);
    return start + 2;
  }
  const readHex = (from: number, count: number): number | undefined => {
    const digits = text.slice(from, from + count);
    if (digits.length !== count || ![...digits].every((digit) => isHexDigit(digit.charCodeAt(0))))
      return undefined;
    return Number.parseInt(digits, 16);
  };
  if (kind === 'x' || kind === 'X') {
    const value = readHex(start + 2, 2);
    if (value === undefined) {
      onError(start, 'Syntax error: invalid \\x escape');
      return start + 2;
    }
    if (bytes) bytesOut.push(value);
    else appendCodePoint(value);
    return start + 4;
  }
  if (kind === 'u' || kind === 'U') {
    const count = kind === 'u' ? 4 : 8;
    const value = readHex(start + 2, count);
    if (bytes) {
      onError(start, 'Syntax error: unicode escapes are not allowed in bytes literals');
      return start + 2 + count;
    }
    if (value === undefined || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) {
      onError(start, `Syntax error: invalid \\${kind} escape`);
      return start + 2 + count;
    }
    appendCodePoint(value);
    return start + 2 + count;
  }
  if (kind >= '0' && kind <= '3') {
    const digits = text.slice(start + 1, start + 4);
    if (/^[0-3][0-7][0-7]$/.test(digits)) {
      const value = Number.parseInt(digits, 8);
      if (bytes) bytesOut.push(value);
      else appendCodePoint(value);
      return start + 4;
    }
  }
  onError(start, `Syntax error: invalid escape sequence '\\${kind}'`);
  return start + 2;
}
