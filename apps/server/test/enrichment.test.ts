import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode, type TestTenant } from './harness.js';

let node: TestNode;
let tenant: TestTenant;

beforeAll(async () => {
  node = await startTestNode({ VIGIL_IP_DATA: 'packaged' });
  tenant = await node.tenant();
});
afterAll(async () => {
  await node.close();
});

interface Decision {
  verdict: string;
  rules: { id: string }[];
  errors: { rule: string; message: string }[];
}

let eventCounter = 0;
async function decide(fields: Record<string, unknown>): Promise<Decision> {
  const response = await node.as(tenant.apiKey, 'POST', '/v1/decisions', {
    type: 'payment',
    id: `evt-${++eventCounter}`,
    fields: { account_id: 'u-1', ...fields },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Decision;
}

const hits = (decision: Decision) => decision.rules.map((rule) => rule.id);

describe('enrichment functions in rules', () => {
  it('answers ip_info, is_disposable_email and phone_country from the packaged data', async () => {
    const saved = await node.as(tenant.apiKey, 'POST', '/v1/manage/policies/payment/versions', {
      strategy: 'worst',
      // Each event below carries one of the fields: the rules on the others fail as missing, not hit.
      on_missing: 'not_hit',
      rules: [
        { id: 'ip-us', when: 'ip_info(event.ip).country == "US"', verdict: 'review' },
        { id: 'disposable', when: 'is_disposable_email(event.email)', verdict: 'reject' },
        { id: 'phone-us', when: 'phone_country(event.phone) == "US"', verdict: 'review' },
      ],
    });
    expect(saved.statusCode, saved.body).toBe(201);
    const version = (saved.json() as { version: number }).version;
    const published = await node.as(
      tenant.apiKey,
      'POST',
      `/v1/manage/policies/payment/versions/${version}/publish`,
    );
    expect(published.statusCode, published.body).toBe(200);

    // The IP database loads in a worker after the node is ready. Until then `ip_info` has no country,
    // so the rule fails as missing and `on_missing: not_hit` accepts.
    const deadline = Date.now() + 10_000;
    let google = await decide({ ip: '8.8.8.8' });
    while (google.verdict !== 'review' && Date.now() < deadline) {
      expect(google.verdict).toBe('accept');
      expect(google.errors.map((error) => error.rule)).toContain('ip-us');
      await new Promise((resolve) => setTimeout(resolve, 100));
      google = await decide({ ip: '8.8.8.8' });
    }
    expect(google.verdict, 'IP data loaded within 10 s').toBe('review');
    expect(hits(google)).toEqual(['ip-us']);

    expect(await decide({ ip: '81.2.69.160' })).toMatchObject({ verdict: 'accept', rules: [] });
    const privateIp = await decide({ ip: '10.0.0.1' });
    expect(privateIp.verdict).toBe('accept');
    expect(privateIp.errors.map((error) => error.rule)).toContain('ip-us');

    const disposable = await decide({ email: 'someone@mailinator.com' });
    expect(disposable.verdict).toBe('reject');
    expect(hits(disposable)).toEqual(['disposable']);
    expect((await decide({ email: 'someone@gmail.com' })).verdict).toBe('accept');

    const usPhone = await decide({ phone: '+14155550123' });
    expect(usPhone.verdict).toBe('review');
    expect(hits(usPhone)).toEqual(['phone-us']);
    expect((await decide({ phone: '+4915123456789' })).verdict).toBe('accept');
  });
});
