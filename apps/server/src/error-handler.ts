import { type ErrorCode, type ErrorDetail, VigilError } from '@vigil/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The error code for a body that fails the route schema; `invalid_request` if unset. */
    bodyErrorCode?: ErrorCode;
  }
}

/** Fastify's own error codes mapped to Vigil's registry. */
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_BAD_URL: 'invalid_request',
};

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

function detailsOf(context: string, errors: AjvError[]): ErrorDetail[] {
  return errors.map((error) => {
    const segments = error.instancePath.split('/').filter((part) => part !== '');
    if (error.keyword === 'required') segments.push(String(error.params.missingProperty));
    if (error.keyword === 'additionalProperties') segments.push(String(error.params.additionalProperty));
    const path = segments.join('.') || (context === 'body' ? '(body)' : context);
    const message =
      error.keyword === 'required'
        ? 'is required'
        : error.keyword === 'additionalProperties'
          ? 'is not allowed'
          : (error.message ?? 'is invalid');
    return { path: context === 'body' ? path : `${context}.${path}`, message };
  });
}

/** Turns anything thrown into a registered error code. Unknown errors become `internal`, logged. */
export function toVigilError(error: unknown, request: FastifyRequest): VigilError {
  if (error instanceof VigilError) return error;
  const fastifyError = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fastifyError.validation !== undefined) {
    const context = fastifyError.validationContext ?? 'body';
    const code =
      context === 'body'
        ? (request.routeOptions.config.bodyErrorCode ?? 'invalid_request')
        : 'invalid_request';
    return new VigilError(code, { details: detailsOf(context, fastifyError.validation) });
  }
  const mapped = fastifyError.code === undefined ? undefined : fastifyCodes[fastifyError.code];
  if (mapped !== undefined) return new VigilError(mapped, { cause: error });
  if (
    fastifyError.statusCode !== undefined &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    return new VigilError('invalid_request', { message: fastifyError.message, cause: error });
  }
  return new VigilError('internal', { cause: error });
}

export function sendError(reply: FastifyReply, error: VigilError): FastifyReply {
  if (error.status === 429 || error.status === 503) reply.header('retry-after', '1');
  return reply.code(error.status).type('application/json').send(error.toBody());
}

/** One handler shapes every error body: `{ error: { code, message, details? } }`. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const vigilError = toVigilError(error, request);
    if (vigilError.status >= 500) {
      // The tenant is bound here rather than per request: a child logger per request costs more
      // than the rest of a decision's logging, and only errors are logged on the hot path.
      const tenant = request.principal?.kind === 'key' ? request.principal.tenantId : undefined;
      request.log.error({ err: error, tenant }, 'request failed');
    }
    return sendError(reply, vigilError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new VigilError('not_found', { message: `No route ${request.method} ${request.url}.` })),
  );
}
