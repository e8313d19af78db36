import { Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { VigilError } from '@vigil/protocol';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's body is optional, so an empty body with a JSON content type is accepted. */
    optionalBody?: boolean;
  }
  interface FastifyRequest {
    /** The request body's bytes after decompression, kept for signature checks. */
    rawBody?: Buffer;
  }
}

const decoders: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** Keys that could reach an object's prototype if some code merged the body into another object. */
const forbiddenKeys = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Walks a parsed body once: refuses nesting deeper than `maxDepth` and prototype-polluting keys.
 * Stops at the first problem, so hostile input costs no more than its size.
 */
export function checkShape(value: unknown, maxDepth: number, depth = 1): void {
  if (typeof value !== 'object' || value === null) return;
  if (depth > maxDepth) {
    throw new VigilError('nesting_too_deep', {
      message: `The body is nested deeper than ${maxDepth} levels.`,
    });
  }
  if (Array.isArray(value)) {
    for (const item of value) checkShape(item, maxDepth, depth + 1);
    return;
  }
  for (const key in value) {
    if (forbiddenKeys.has(key)) {
      throw new VigilError('forbidden_key', { details: [{ path: key, message: 'is a forbidden key' }] });
    }
    checkShape((value as Record<string, unknown>)[key], maxDepth, depth + 1);
  }
}

const backslash = 0x5c;
const openBrace = 0x7b;
const openBracket = 0x5b;

/**
 * Whether a body's bytes could hold a forbidden key or nesting deeper than `maxDepth`, so that
 * `checkShape` must walk it. Without a backslash no key is escaped, so a forbidden key appears
 * verbatim; nesting is never deeper than the number of `{` and `[` bytes. Native scans of the bytes
 * cost far less than walking every property of a typical event.
 */
export function mayBreakShape(bytes: Buffer, maxDepth: number): boolean {
  if (bytes.includes(backslash)) return true;
  for (const key of forbiddenKeys) if (bytes.includes(key)) return true;
  let opened = 0;
  for (const byte of [openBrace, openBracket]) {
    for (let at = bytes.indexOf(byte); at !== -1; at = bytes.indexOf(byte, at + 1)) {
      opened += 1;
      if (opened > maxDepth) return true;
    }
  }
  return false;
}

/**
 * Replaces Fastify's JSON parser: decompresses gzip, deflate and br bodies with the size limit
 * counted after decompression, parses JSON, checks depth and forbidden keys, and keeps the bytes
 * for HMAC signature checks.
 */
export function registerBodyParsing(app: FastifyInstance, options: { maxDepth: number }): void {
  app.addHook('preParsing', (request, _reply, payload, finish) => {
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    if (encoding === undefined || encoding === '' || encoding === 'identity') {
      finish(null, payload);
      return;
    }
    const decoder = decoders[encoding];
    if (decoder === undefined) {
      finish(
        new VigilError('unsupported_encoding', {
          message: `Content-Encoding '${encoding}' is not supported.`,
        }),
      );
      return;
    }
    let received = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        done(null, chunk);
      },
    });
    const decoded = payload.pipe(counter).pipe(decoder());
    payload.on('error', (error) => decoded.destroy(error));
    decoded.on('error', () => payload.destroy());
    Object.defineProperty(decoded, 'receivedEncodedLength', { get: () => received });
    finish(null, decoded);
  });

  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    request.rawBody = bytes;
    // An empty body is no body where a route takes none or an optional one (some clients send a
    // JSON content type on DELETE); elsewhere it is malformed JSON.
    if (
      bytes.length === 0 &&
      (request.method === 'DELETE' || request.routeOptions.config.optionalBody === true)
    ) {
      done(null, undefined);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      done(
        new VigilError('malformed_json', {
          message: `The body is not valid JSON: ${(error as Error).message}`,
        }),
      );
      return;
    }
    try {
      if (mayBreakShape(bytes, options.maxDepth)) checkShape(parsed, options.maxDepth);
    } catch (error) {
      done(error as Error);
      return;
    }
    done(null, parsed);
  });
}
