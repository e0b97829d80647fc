import { describe, expect, it } from 'vitest';
import { formatIssue, printable, quoted } from '../../src/inventory/errors.js';
import { hostField, looksLikeYamlInventory } from '../../src/inventory/ini.js';
import { sameSubnet, subnetEdgeReason, subnetOf, unusableReason } from '../../src/inventory/ipv4.js';
import { closest, editDistance } from '../../src/inventory/suggest.js';

describe('closest known key', () => {
  it('measures edits, transpositions included', () => {
    expect(editDistance('enable_haproxy', 'enable_haproxy')).toBe(0);
    expect(editDistance('enable_haproxyy', 'enable_haproxy')).toBe(1);
    expect(editDistance('enable_hapr0xy', 'enable_haproxy')).toBe(1);
    expect(editDistance('enable_hpaorxy', 'enable_haproxy')).toBe(2);
    expect(editDistance('abc', 'xyz', 1)).toBe(2);
  });

  it('suggests only near misses, ignoring case', () => {
    const keys = ['enable_haproxy', 'enable_mariadb', 'kolla_internal_vip_address'];
    expect(closest('enable_haproxyy', keys)).toBe('enable_haproxy');
    expect(closest('ENABLE_MARIADB', keys)).toBe('enable_mariadb');
    expect(closest('kolla_internal_vip_adress', keys)).toBe('kolla_internal_vip_address');
    expect(closest('enable_nova', keys)).toBeUndefined();
    expect(closest('enable_haproxy', keys)).toBeUndefined();
  });
});

describe('IPv4 rules', () => {
  it('names what an address that no host can have is', () => {
    expect(unusableReason('10.0.0.1')).toBeUndefined();
    expect(unusableReason('127.1.2.3')).toMatch(/^a loopback address/);
    expect(unusableReason('0.0.0.0')).toMatch(/^the unspecified address/);
  });

  it('works out subnets from a prefix length', () => {
    expect(subnetOf('10.1.2.3', 24)).toBe('10.1.2.0/24');
    expect(subnetOf('10.1.2.3', 16)).toBe('10.1.0.0/16');
    expect(subnetOf('192.168.7.200', 25)).toBe('192.168.7.128/25');
    expect(sameSubnet('10.0.0.1', '10.0.0.254', 24)).toBe(true);
    expect(sameSubnet('10.0.0.1', '10.0.1.1', 24)).toBe(false);
    expect(sameSubnet('10.0.0.1', '10.0.1.1', 16)).toBe(true);
    expect(subnetEdgeReason('10.0.0.0', 24)).toBe('the network address of 10.0.0.0/24');
    expect(subnetEdgeReason('10.0.255.255', 16)).toBe('the broadcast address of 10.0.0.0/16');
    expect(subnetEdgeReason('10.0.0.7', 24)).toBeUndefined();
  });
});

describe('printing input', () => {
  it('escapes control characters and cuts long text', () => {
    expect(printable('ok text')).toBe('ok text');
    expect(printable('\x1b[31mred\x07')).toBe('\\x1b[31mred\\x07');
    expect(printable('tab\there\r\n')).toBe('tab\\x09here\\x0d\\x0a');
    expect(printable('x'.repeat(100))).toBe(`${'x'.repeat(60)}…`);
    expect(quoted('a"b')).toBe('"a"b"');
  });

  it('formatIssue escapes whatever reaches it', () => {
    expect(formatIssue({ file: 'multinode', line: 3, field: 'h\x1b', message: 'bad\x00' })).toBe(
      'multinode:3 h\\x1b: bad\\x00',
    );
  });

  it('prints a host field only when it looks like a host name or range', () => {
    expect(hostField('control[01:03]')).toBe('control[01:03]');
    expect(hostField('ctl1.example.org')).toBe('ctl1.example.org');
    expect(hostField('P@ssw0rd!')).toBe('');
    expect(hostField('x'.repeat(101))).toBe('');
  });
});

describe('looksLikeYamlInventory', () => {
  it('spots a YAML or JSON inventory by its first line, not an INI one', () => {
    expect(looksLikeYamlInventory('all:\n  hosts:\n')).toBe(true);
    expect(looksLikeYamlInventory('# kolla\n\n---\nall:\n')).toBe(true);
    expect(looksLikeYamlInventory('{"all": {}}')).toBe(true);
    expect(looksLikeYamlInventory('[control]\nctl1\n')).toBe(false);
    expect(looksLikeYamlInventory('ctl1:2222 ansible_host=10.0.0.1\n')).toBe(false);
    expect(looksLikeYamlInventory('')).toBe(false);
  });
});
