import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatIssue } from '../../src/inventory/errors.js';
import { expandHostPattern, parseIniInventory, tokenize } from '../../src/inventory/ini.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/inventory');

function parse(text: string) {
  return parseIniInventory(text, 'multinode');
}

function hostsOf(text: string, group: string): string[] | undefined {
  return parse(text).groups.get(group)?.hosts;
}

describe('parseIniInventory: a kolla-ansible multinode', () => {
  const inv = parse(readFileSync(join(FIXTURES, 'kolla/multinode'), 'utf8'));

  it('parses without issues', () => {
    expect(inv.issues).toEqual([]);
  });

  it('expands host ranges, zero padded and inside addresses, in order of first appearance', () => {
    expect([...inv.hosts.keys()]).toEqual([
      'control01',
      'control02',
      'control03',
      'net1',
      '10.10.0.31',
      '10.10.0.32',
    ]);
    expect(inv.hosts.get('control02')?.line).toBe(6);
    expect(inv.hosts.get('net1')?.line).toBe(10);
  });

  it('lists every group with its hosts, children expanded transitively', () => {
    const groups = Object.fromEntries([...inv.groups.values()].map((g) => [g.name, g.hosts]));
    expect(groups.all).toEqual(['control01', 'control02', 'control03', 'net1', '10.10.0.31', '10.10.0.32']);
    expect(groups.control).toEqual(['control01', 'control02', 'control03']);
    expect(groups.network).toEqual(['control01', 'control02', 'net1']);
    expect(groups.loadbalancer).toEqual(['control01', 'control02', 'net1']);
    expect(groups.compute).toEqual(['10.10.0.31', '10.10.0.32']);
    expect(groups.storage).toEqual([]);
    expect(groups.deployment).toEqual([]);
    expect(groups['nova-api']).toEqual(['control01', 'control02', 'control03']);
    expect(groups.baremetal).toEqual(groups.all);
    expect(groups.ungrouped).toBeUndefined();
    expect([...inv.groups.keys()][0]).toBe('all');
    expect(inv.groups.get('baremetal')?.children).toEqual([
      'control',
      'network',
      'compute',
      'storage',
      'monitoring',
    ]);
    expect(inv.groups.get('control')?.line).toBe(4);
  });

  it('gives each host every group it is in, directly or through children, without all', () => {
    expect([...(inv.hosts.get('net1')?.groups ?? [])].sort()).toEqual([
      'baremetal',
      'common',
      'loadbalancer',
      'network',
    ]);
    const c1 = [...(inv.hosts.get('control01')?.groups ?? [])];
    expect(c1).toContain('nova-api');
    expect(c1).toContain('monitoring');
    expect(c1).not.toContain('all');
  });

  it('merges host vars from every line and applies group vars, host lines winning', () => {
    expect(inv.hosts.get('control01')?.vars).toEqual({
      ansible_user: 'kolla',
      ansible_become: 'true',
      ansible_python_interpreter: '/usr/bin/python3',
      ansible_host: '10.10.0.11',
    });
    expect(inv.hosts.get('net1')?.vars).toEqual({
      ansible_user: 'netops',
      ansible_become: 'true',
      ansible_host: '10.10.0.21',
    });
    expect(inv.hosts.get('control03')?.varLines.ansible_host).toBe(78);
    expect(inv.hosts.get('control03')?.varLines.ansible_user).toBe(24);
    expect(inv.groups.get('control')?.vars).toEqual({ ansible_python_interpreter: '/usr/bin/python3' });
  });
});

describe('parseIniInventory: semantics', () => {
  it('puts hosts listed before any section in ungrouped, unless they are in another group too', () => {
    const inv = parse('lonely\nboth\n\n[control]\nboth\n');
    expect(inv.issues).toEqual([]);
    expect(inv.groups.get('ungrouped')?.hosts).toEqual(['lonely']);
    expect(inv.groups.get('control')?.hosts).toEqual(['both']);
    expect(inv.groups.get('all')?.hosts).toEqual(['lonely', 'both']);
    expect([...(inv.hosts.get('both')?.groups ?? [])]).toEqual(['control']);
  });

  it('orders group hosts by first appearance in the whole inventory', () => {
    expect(hostsOf('[a]\nh1\nh2\n[b]\nh3\nh2\nh1\n', 'b')).toEqual(['h1', 'h2', 'h3']);
  });

  it('applies group vars by depth: all < parent < child < host line; same depth by name', () => {
    const text = [
      '[all:vars]',
      'x=all',
      'y=all',
      'z=all',
      'w=all',
      '[parent:children]',
      'child',
      '[parent:vars]',
      'x=parent',
      'y=parent',
      'z=parent',
      '[child]',
      'h1 z=host',
      '[child:vars]',
      'y=child',
      '[zeta]',
      'h1',
      '[zeta:vars]',
      'w=zeta',
      '[alpha]',
      'h1',
      '[alpha:vars]',
      'w=alpha',
    ].join('\n');
    const inv = parse(text);
    expect(inv.issues).toEqual([]);
    expect(inv.hosts.get('h1')?.vars).toEqual({ x: 'parent', y: 'child', z: 'host', w: 'zeta' });
    expect(inv.hosts.get('h1')?.varLines).toEqual({ x: 9, y: 15, z: 13, w: 19 });
  });

  it('handles quoting, comments, CRLF, trailing whitespace and host:port', () => {
    const text =
      '# comment\r\n; other comment\r\n[web]   \r\nweb1:2222 a="two words" b=\'single q\' c="esc \\" q" d=x#y  # tail\r\n\r\n' +
      '[web:vars]\r\nmsg = "hello world"\r\nraw=a=b\r\n';
    const inv = parse(text);
    expect(inv.issues).toEqual([]);
    expect(inv.hosts.get('web1')?.vars).toEqual({
      ansible_port: '2222',
      a: 'two words',
      b: 'single q',
      c: 'esc " q',
      d: 'x#y',
      msg: 'hello world',
      raw: 'a=b',
    });
  });

  it('merges a host that appears twice on different lines when its variables agree', () => {
    const inv = parse('[a]\nh1 v=1\n[b]\nh1 v=1 w=3\n');
    expect(inv.issues).toEqual([]);
    expect(inv.hosts.get('h1')?.vars).toEqual({ v: '1', w: '3' });
    expect(inv.hosts.get('h1')?.line).toBe(2);
  });

  it('refuses a host line repeated with a different value, printing only values that are not secrets', () => {
    const inv = parse(
      '[a]\nh1 ansible_host=10.0.0.1 ansible_become_password=TOPSECRET1\n[b]\nh1 ansible_host=10.0.0.2 ansible_become_password=TOPSECRET2\n',
    );
    expect(inv.issues.map(formatIssue)).toEqual([
      "multinode:4 h1: ansible_host=10.0.0.2 here, but ansible_host=10.0.0.1 on line 2: a host's variables must agree on every line that names it",
      "multinode:4 h1: ansible_become_password here differs from ansible_become_password on line 2: a host's variables must agree on every line that names it (the values are not printed)",
    ]);
    // The first value stays; nothing silently wins.
    expect(inv.hosts.get('h1')?.vars.ansible_host).toBe('10.0.0.1');
  });

  it('accepts the same variable twice on one line when the values agree', () => {
    expect(parse('[a]\nh1 v=1 v=1\n').issues).toEqual([]);
  });

  it('accepts children and vars declared before their group', () => {
    const inv = parse('[lb:children]\nnet\n[net:vars]\nk=v\n[net]\nn1\n');
    expect(inv.issues).toEqual([]);
    expect(inv.groups.get('lb')?.hosts).toEqual(['n1']);
    expect(inv.hosts.get('n1')?.vars).toEqual({ k: 'v' });
  });

  it('accepts a child group defined only by its own :children section', () => {
    const inv = parse('[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh\n');
    expect(inv.issues).toEqual([]);
    expect(inv.groups.get('top')?.hosts).toEqual(['h']);
  });
});

describe('parseIniInventory: errors', () => {
  it('reports every problem with file, line and field, not only the first', () => {
    const text = [
      '[control]', // 1
      'ctl1 ansible_host=10.0.0.1 oops', // 2: variable without =
      'ctl2 a=1 a=2', // 3: conflicting duplicate
      '[control:vars]', // 4
      'novalue', // 5: key=value expected
      '[bad section', // 6: malformed header
      'ignored line', // 7: skipped (bad section)
      '[control:kids]', // 8: invalid suffix
      '[lb:children]', // 9
      'network', // 10: unknown child group
      'control', // 11
      '[x:children]', // 12
      'y', // 13
      '[y:children]', // 14
      'x', // 15: cycle
      '[web]', // 16
      'web[3:1]', // 17: bad range
      'web1 k="unterminated', // 18
    ].join('\n');
    const inv = parse(text);
    const lines = inv.issues.map(formatIssue);
    expect(lines).toEqual([
      'multinode:2 ctl1: variable 2 on this line has no "=" (expected key=value; quote values with spaces)',
      'multinode:3 ctl2: a is set twice on this line with different values',
      'multinode:5 control: key=value expected in [control:vars]',
      'multinode:6: malformed section header [bad section (expected [group], [group:children] or [group:vars])',
      'multinode:8 control: invalid section suffix ":kids" (expected :children or :vars)',
      'multinode:17 web[3:1]: host range [3:1] starts after it ends',
      'multinode:18 web1: unterminated " quote',
      'multinode:10 network: unknown group in [lb:children] (no [network] or [network:children] section)',
      'multinode:15 y: cycle in [y:children]: x -> y -> x',
    ]);
    for (const i of inv.issues) expect(i.file).toBe('multinode');
    // The valid parts still count.
    expect(inv.groups.get('lb')?.hosts).toEqual(['ctl1', 'ctl2']);
    expect(inv.hosts.get('ctl1')?.vars).toEqual({ ansible_host: '10.0.0.1' });
  });

  it('never quotes the text of a host variable that has no "=" (it may be part of a secret)', () => {
    const inv = parse('[control]\nctl1 ansible_password=my s3cr3t-part pa$$=word\n');
    expect(inv.issues).toHaveLength(2);
    for (const i of inv.issues) {
      expect(formatIssue(i)).not.toContain('s3cr3t');
      expect(formatIssue(i)).not.toContain('pa$$');
    }
  });

  it('reports :vars for a group that is never defined, and bad variable names', () => {
    const inv = parse('[ghost:vars]\nk=v\n[real]\nh1 1bad=x\n[real:vars]\nbad-name=1\n');
    expect(inv.issues.map(formatIssue)).toEqual([
      'multinode:4 h1: variable 1 on this line has an invalid name (letters, digits and "_", not starting with a digit)',
      'multinode:6 real: invalid variable name "bad-name" in [real:vars] (letters, digits and "_", not starting with a digit)',
      'multinode:1 ghost: [ghost:vars] for a group that is never defined (no [ghost] section)',
    ]);
  });

  it('reports a group that lists itself as a child, and all as a child', () => {
    const inv = parse('[a:children]\na\nall\n');
    expect(inv.issues.map((i) => [i.line, i.field])).toEqual([
      [3, 'all'],
      [2, 'a'],
    ]);
    expect(inv.issues[1]?.message).toBe('cycle in [a:children]: a -> a');
  });

  it('reports a child line that is not a single group name', () => {
    const inv = parse('[a:children]\nb c\n[b]\n');
    expect(inv.issues.map(formatIssue)).toEqual([
      'multinode:2 a: expected one child group name per line in [a:children]',
    ]);
  });
});

describe('expandHostPattern', () => {
  it('expands numeric, zero-padded, lettered and stepped ranges', () => {
    expect(expandHostPattern('ctl1')).toEqual({ names: ['ctl1'] });
    expect(expandHostPattern('ctl[1:3]')).toEqual({ names: ['ctl1', 'ctl2', 'ctl3'] });
    expect(expandHostPattern('control[01:03]')).toEqual({ names: ['control01', 'control02', 'control03'] });
    expect(expandHostPattern('node[08:10].lab')).toEqual({
      names: ['node08.lab', 'node09.lab', 'node10.lab'],
    });
    expect(expandHostPattern('db-[a:c]')).toEqual({ names: ['db-a', 'db-b', 'db-c'] });
    expect(expandHostPattern('n[1:7:3]')).toEqual({ names: ['n1', 'n4', 'n7'] });
    expect(expandHostPattern('n[:2]')).toEqual({ names: ['n0', 'n1', 'n2'] });
    expect(expandHostPattern('r[1:2]h[a:b]')).toEqual({ names: ['r1ha', 'r1hb', 'r2ha', 'r2hb'] });
  });

  it('rejects malformed ranges', () => {
    for (const bad of [
      'n[01:3]',
      'n[3:1]',
      'n[1]',
      'n[1:2:0]',
      'n[1:x]',
      'n[1:2',
      'n]1[',
      'n[1:2:3:4]',
      'n[0:99999]',
    ]) {
      expect(expandHostPattern(bad), bad).toHaveProperty('error');
    }
  });
});

describe('tokenize', () => {
  it('splits like a shell and stops at a comment', () => {
    expect(tokenize(`a b="c d" e='f g' h\\ i # j`)).toEqual({ tokens: ['a', 'b=c d', 'e=f g', 'h i'] });
    expect(tokenize('a "b')).toEqual({ tokens: ['a'], error: 'unterminated " quote' });
  });
});

describe('parseIniInventory: wrapped secrets (issue 9)', () => {
  it('never prints the rest of a [group:vars] secret wrapped onto its own line', () => {
    const inv = parse(
      '[control:vars]\nansible_become_password=TOPSECRET-start\n-TOPSECRET=rest\n[control]\nctl1\n',
    );
    expect(inv.issues.map(formatIssue)).toEqual([
      'multinode:3 control: this line looks like the rest of ansible_become_password on line 2, wrapped: join it to line 2 (the line is not printed: it may be a secret)',
    ]);
  });

  it('marks a bare host line after a secret-looking variable, and clears the mark when the host is named again', () => {
    const inv = parse('[a]\nh1 ansible_ssh_pass=x\nmaybe_secret\n[b]\nh2 k=v\nmaybe_secret k=v\n');
    expect(inv.issues).toEqual([]);
    expect(inv.hosts.get('maybe_secret')?.wrappedAfter).toBeUndefined();
    const once = parse('[a]\nh1 ansible_ssh_pass=x\nmaybe_secret\n');
    expect(once.hosts.get('maybe_secret')?.wrappedAfter).toEqual({ key: 'ansible_ssh_pass', line: 2 });
    // An ordinary variable before it marks nothing: kolla's multinode has bare hosts after host lines.
    expect(parse('[a]\nh1 ansible_user=kolla\nh2\n').hosts.get('h2')?.wrappedAfter).toBeUndefined();
  });

  it('merges a kolla inventory that names a host first bare, then with its address', () => {
    const inv = parse('[control]\ncontrol01\n[control]\ncontrol01 ansible_host=10.0.0.11\n');
    expect(inv.issues).toEqual([]);
    expect(inv.hosts.get('control01')?.vars).toEqual({ ansible_host: '10.0.0.11' });
  });
});
