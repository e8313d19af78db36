import { disposableEmailBlocklist } from 'disposable-email-domains-js';

/** Longest domain name (RFC 1035); longer text is not a domain worth looking up. */
const MAX_DOMAIN_LENGTH = 253;

let blocklist: ReadonlySet<string> | undefined;

// Built on first use (about 9,000 domains, a few milliseconds), not at import.
function domains(): ReadonlySet<string> {
  blocklist ??= new Set(disposableEmailBlocklist().map((domain) => domain.toLowerCase()));
  return blocklist;
}

/**
 * Whether an email address (or a bare domain) belongs to a disposable-mail provider, by the community
 * list of `disposable-email-domains-js`. The domain and each parent domain are looked up, so
 * `x.mailinator.com` matches `mailinator.com`. Case and a trailing dot are ignored. Never throws.
 */
export function isDisposableEmail(email: string): boolean {
  if (typeof email !== 'string') return false;
  let domain = email
    .slice(email.lastIndexOf('@') + 1)
    .trim()
    .toLowerCase();
  if (domain.endsWith('.')) domain = domain.slice(0, -1);
  if (domain.length === 0 || domain.length > MAX_DOMAIN_LENGTH) return false;
  const list = domains();
  for (let dot = -1; ; dot = domain.indexOf('.', dot + 1)) {
    const candidate = domain.slice(dot + 1);
    // A bare top-level domain is never on the list, and skipping it saves a lookup.
    if (!candidate.includes('.')) return false;
    if (list.has(candidate)) return true;
  }
}
