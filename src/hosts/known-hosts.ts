// OpenSSH known_hosts: which host keys are trusted for a host. Pure: file text and the key a host presented in, a
// decision out; src/hosts/ssh.ts reads and appends the file.
import { createHmac } from 'node:crypto';

export interface KnownHostEntry {
  readonly line: number;
  readonly marker: 'revoked' | 'cert-authority' | undefined;
  /** The host patterns (comma separated in the file), or a hashed name `|1|salt|hash`. */
  readonly patterns: readonly string[];
  readonly keyType: string;
  /** The key blob, base64 as in the file. */
  readonly key: string;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) return;
    out.push({ line: i + 1, marker, patterns: hosts.split(','), keyType, key });
  });
  return out;
}

/** The name known_hosts records for a host: `addr` on port 22, `[addr]:port` on any other. */
export function knownHostName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${[...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('')}$`,
    'i',
  );
  return re.test(name);
}

function hashedMatch(pattern: string, name: string): boolean {
  const parts = pattern.split('|');
  // |1|salt|hash
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const want = parts[3] ?? '';
  return createHmac('sha1', salt).update(name).digest('base64') === want;
}

/** Whether an entry's host patterns name the host (OpenSSH's rules: any positive match, no negated match). */
export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  let matched = false;
  for (const p of entry.patterns) {
    if (p.startsWith('|')) {
      if (hashedMatch(p, name)) matched = true;
      continue;
    }
    const negated = p.startsWith('!');
    const pat = negated ? p.slice(1) : p;
    if (globMatch(pat, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The key type named inside an SSH public key blob (its first string). */
export function keyTypeOfBlob(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || blob.length < 4 + n) return undefined;
  return blob.subarray(4, 4 + n).toString('latin1');
}

export type HostKeyDecision =
  | { readonly verdict: 'known'; readonly line: number }
  | { readonly verdict: 'unknown' }
  | { readonly verdict: 'changed'; readonly lines: readonly number[] }
  | { readonly verdict: 'revoked'; readonly line: number };

/**
 * What known_hosts says of the key a host presented: known (a line names the host with this key), revoked, changed
 * (lines name the host, with other keys of the same type: possibly a man in the middle), or unknown.
 */
export function checkHostKey(
  entries: readonly KnownHostEntry[],
  address: string,
  port: number,
  blob: Buffer,
): HostKeyDecision {
  const name = knownHostName(address, port);
  const key = blob.toString('base64');
  const type = keyTypeOfBlob(blob);
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key === key);
  if (revoked) return { verdict: 'revoked', line: revoked.line };
  const forHost = entries.filter((e) => e.marker === undefined && entryMatches(e, name));
  const same = forHost.find((e) => e.key === key);
  if (same) return { verdict: 'known', line: same.line };
  const others = forHost.filter((e) => e.keyType === type);
  if (others.length > 0) return { verdict: 'changed', lines: others.map((e) => e.line) };
  return { verdict: 'unknown' };
}

/** The signature algorithms of the host key types known for a host, to ask for those first (as OpenSSH does). */
export function knownKeyAlgorithms(
  entries: readonly KnownHostEntry[],
  address: string,
  port: number,
): string[] {
  const name = knownHostName(address, port);
  const types = new Set(
    entries.filter((e) => e.marker === undefined && entryMatches(e, name)).map((e) => e.keyType),
  );
  const out: string[] = [];
  for (const t of types) {
    if (t === 'ssh-rsa') out.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else out.push(t);
  }
  return out;
}

/** The line recording a newly accepted key. */
export function knownHostsLine(address: string, port: number, blob: Buffer): string {
  const type = keyTypeOfBlob(blob);
  if (!type) throw new Error('not an SSH public key');
  return `${knownHostName(address, port)} ${type} ${blob.toString('base64')}\n`;
}
