import { Type } from '@sinclair/typebox';
import { ErrorResponse } from '@vigil/protocol';

/** The error answers every route may give, all in the one error shape (docs/ERRORS.md). */
export const errorResponses = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
  422: ErrorResponse,
};

/**
 * Responses of control-plane routes: their success bodies are described by the route summaries
 * and serialised as they are; errors share one shape.
 */
export const controlResponses = {
  200: Type.Unknown(),
  201: Type.Unknown(),
  204: Type.Null(),
  ...errorResponses,
};
