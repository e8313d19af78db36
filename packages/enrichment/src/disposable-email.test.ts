import { describe, expect, it } from 'vitest';
import { isDisposableEmail } from './disposable-email.js';

describe('isDisposableEmail', () => {
  it('flags a disposable provider', () => {
    expect(isDisposableEmail('someone@mailinator.com')).toBe(true);
  });

  it('flags subdomains of a disposable domain, whatever the case', () => {
    expect(isDisposableEmail('someone@inbox.mailinator.com')).toBe(true);
    expect(isDisposableEmail('Someone@A.B.MAILINATOR.COM')).toBe(true);
  });

  it('accepts a bare domain and a trailing dot', () => {
    expect(isDisposableEmail('mailinator.com')).toBe(true);
    expect(isDisposableEmail('someone@mailinator.com.')).toBe(true);
  });

  it('does not flag mainstream providers', () => {
    for (const email of [
      'someone@gmail.com',
      'someone@outlook.com',
      'someone@yahoo.com',
      'someone@proton.me',
    ]) {
      expect(isDisposableEmail(email)).toBe(false);
    }
  });

  it('matches whole labels only, from the right', () => {
    expect(isDisposableEmail('someone@vigilmailinator.com')).toBe(false);
    expect(isDisposableEmail('someone@mailinator.com.example.org')).toBe(false);
  });

  it.each(['', '@', 'someone@', 'someone@com', 'no at sign', 'a@.', `a@${'x'.repeat(300)}.com`])(
    'returns false for %j',
    (text) => {
      expect(isDisposableEmail(text)).toBe(false);
    },
  );

  it('returns false for a non-string at run time', () => {
    expect(isDisposableEmail(undefined as unknown as string)).toBe(false);
  });
});
