import type { Scope } from '@vigil/protocol';
import { VigilError } from '@vigil/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Authenticator, type Principal, requireScope } from '../auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/**
 * Authenticates every route of the enclosing plugin with an API key: a bearer key is checked
 * before the body is read; a signed request after, since its signature covers the body.
 */
export function authenticateKey(app: FastifyInstance, auth: Authenticator, scope: Scope): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const keyId = request.headers['x-vigil-key'];
    if (typeof keyId === 'string' && request.headers.authorization === undefined) {
      done();
      return;
    }
    try {
      request.principal = auth.bearer(request.headers.authorization);
      requireScope(request.principal, scope);
      done();
    } catch (error) {
      done(error as Error);
    }
  });
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.principal !== null) {
      done();
      return;
    }
    const accept = (principal: Principal) => {
      request.principal = principal;
      requireScope(principal, scope);
    };
    try {
      const principal = auth.signed(
        request.headers['x-vigil-key'] as string,
        header(request, 'x-vigil-timestamp'),
        header(request, 'x-vigil-signature'),
        request.rawBody ?? Buffer.alloc(0),
      );
      if (!(principal instanceof Promise)) {
        accept(principal);
        done();
        return;
      }
      principal.then(
        (shared) => {
          try {
            accept(shared);
            done();
          } catch (error) {
            done(error as Error);
          }
        },
        (error: unknown) => done(error as Error),
      );
    } catch (error) {
      done(error as Error);
    }
  });
}

/** Authenticates every route of the enclosing plugin with the platform admin token. */
export function authenticateAdmin(app: FastifyInstance, auth: Authenticator): void {
  app.addHook('onRequest', async (request) => {
    request.principal = auth.admin(request.headers.authorization);
  });
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** The tenant of the calling key; data-plane routes never take a tenant from the body. */
export function tenantOf(request: FastifyRequest): string {
  const principal = request.principal;
  if (principal?.kind !== 'key') throw new VigilError('invalid_credentials');
  return principal.tenantId;
}

/** `admin` or `key:<id>`, for audit entries. */
export function actorOf(request: FastifyRequest): string {
  const principal = request.principal;
  if (principal === null) throw new VigilError('invalid_credentials');
  return principal.kind === 'admin' ? 'admin' : `key:${principal.keyId}`;
}
