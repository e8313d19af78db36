/**
 * The one registry of error codes Vigil answers with. A code is never reused for another meaning;
 * `docs/ERRORS.md` is checked against this table by a test.
 */
export const errorCodes = {
  malformed_json: { status: 400, message: 'The request body is not valid JSON.' },
  forbidden_key: {
    status: 400,
    message: 'The body contains a forbidden key such as __proto__ or constructor.',
  },
  nesting_too_deep: { status: 400, message: 'The body is nested more deeply than allowed.' },
  invalid_request: { status: 400, message: 'The request does not match the route schema.' },
  unsupported_encoding: { status: 415, message: 'The Content-Encoding is not supported.' },
  missing_credentials: { status: 401, message: 'No credentials were presented.' },
  invalid_credentials: { status: 401, message: 'The credentials are not valid.' },
  signature_expired: { status: 401, message: 'The signed request is outside the 300 s window.' },
  signature_replayed: { status: 401, message: 'The signed request was already used.' },
  insufficient_scope: { status: 403, message: 'The key lacks the scope this route needs.' },
  not_found: { status: 404, message: 'No such resource.' },
  unknown_event_type: { status: 422, message: 'The event type is not defined for this tenant.' },
  event_not_found: { status: 404, message: 'No event with this id is known.' },
  conflict: { status: 409, message: 'The resource already exists or changed concurrently.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  unsupported_media_type: { status: 415, message: 'Only application/json is accepted here.' },
  invalid_event: { status: 422, message: 'The event does not match its schema.' },
  invalid_config: { status: 422, message: 'The configuration is not valid.' },
  invalid_policy: { status: 422, message: 'The policy does not compile.' },
  invalid_state: { status: 409, message: 'The change does not fit the current state.' },
  rate_limited: { status: 429, message: 'The tenant is over its rate limit.' },
  too_many_concurrent: { status: 429, message: 'The tenant is over its concurrency limit.' },
  overloaded: { status: 503, message: 'The node is overloaded; retry later.' },
  draining: { status: 503, message: 'The node is shutting down; retry on another node.' },
  component_unavailable: {
    status: 503,
    message: 'A component this request needs is unavailable; retry later.',
  },
  config_unavailable: {
    status: 503,
    message:
      'The configuration store is unavailable: this node serves its last good configuration and refuses changes.',
  },
  internal: { status: 500, message: 'An internal error occurred.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCodes;

/** One problem inside an invalid request, pointing at where it is. */
export interface ErrorDetail {
  /** JSON pointer-like path, for example `fields.amount`. */
  path: string;
  message: string;
  /** For policy compile errors: the rule, and the 1-based place in its `when` text. */
  rule?: string;
  line?: number;
  column?: number;
}

/** Base of every operational error: a registered code, whether a retry may help, and context. */
export class VigilError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: ErrorDetail[] | undefined;
  readonly context: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    options: {
      message?: string;
      details?: ErrorDetail[];
      retryable?: boolean;
      context?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(options.message ?? errorCodes[code].message, { cause: options.cause });
    this.name = 'VigilError';
    this.code = code;
    this.status = errorCodes[code].status;
    this.retryable = options.retryable ?? (this.status === 429 || this.status === 503);
    this.details = options.details;
    this.context = options.context;
  }

  /** The JSON body every error response has. */
  toBody(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: ErrorDetail[] };
}
