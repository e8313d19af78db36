import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, LogController } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LazyChildLogger, lazyChildLoggerFactory } from './lazy-logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

describe('LazyChildLogger', () => {
  it('makes the child only when something logs, with its bindings', () => {
    const { lines, logger } = capture();
    let children = 0;
    const parent = new Proxy(logger, {
      get(target, property, receiver) {
        if (property === 'child') {
          return (...args: Parameters<typeof logger.child>) => {
            children += 1;
            return target.child(...args);
          };
        }
        return Reflect.get(target, property, receiver);
      },
    }) as unknown as FastifyBaseLogger;
    const lazy = new LazyChildLogger(parent, { reqId: 'r-1' }, {});
    expect(lazy.level).toBe('info');
    lazy.debug('not written at info level');
    expect(children).toBe(1);
    const quiet = new LazyChildLogger(parent, { reqId: 'r-2' }, {});
    expect(quiet.level).toBe('info');
    expect(children).toBe(1);
    lazy.error({ tenant: 't-1' }, 'request failed');
    lazy.info('twice');
    expect(children).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ reqId: 'r-1', tenant: 't-1', msg: 'request failed', level: 50 }),
      expect.objectContaining({ reqId: 'r-1', msg: 'twice', level: 30 }),
    ]);
  });

  it('serves as Fastify request logger: a handler that logs writes the request id', async () => {
    const { lines, logger } = capture();
    const app = Fastify({
      loggerInstance: logger as FastifyBaseLogger,
      logController: new LogController({ disableRequestLogging: true }),
      childLoggerFactory: lazyChildLoggerFactory,
      genReqId: () => 'req-42',
    });
    app.get('/', async (request) => {
      request.log.warn({ detail: 1 }, 'from the handler');
      return { ok: true };
    });
    const response = await app.inject({ method: 'GET', url: '/' });
    expect(response.json()).toEqual({ ok: true });
    expect(lines).toEqual([expect.objectContaining({ reqId: 'req-42', detail: 1, msg: 'from the handler' })]);
    await app.close();
  });
});
