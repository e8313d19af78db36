/** A small client for the `/v1/manage` routes, with the tenant's `manage` key. */
export class ManageClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  async request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    const response = await fetch(`${this.baseUrl.replace(/\/$/, '')}/v1/manage${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.apiKey}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    let json: Record<string, unknown> = {};
    try {
      json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      json = { error: { code: 'not_json', message: text.slice(0, 200) } };
    }
    return { status: response.status, json };
  }
}

export interface ApiError {
  code: string;
  message: string;
  details?: { path: string; message: string; rule?: string; line?: number; column?: number }[];
}

export function errorOf(json: Record<string, unknown>): ApiError {
  return (json.error as ApiError | undefined) ?? { code: 'unknown', message: JSON.stringify(json) };
}
