// Neutron's part of `stackha status` (src/services/neutron/status.ts): agents alive or dead, which host holds each HA
// router (split brain, no primary, addresses left without keepalived), which DHCP agents serve each network.
import { describe, expect, it } from 'vitest';
import {
  type NamespaceState,
  type RouterBinding,
  agentStatus,
  dhcpStatus,
  parseAgents,
  parseDhcpBindings,
  parseRouterBindings,
  parseRouterNamespaces,
  routerStatus,
} from '../../src/services/neutron/status.js';

const DOWN = 30;
const R = 'e4269f0e-d50c-4d6f-9aaa-148e37570990';

function bindings(states: Record<string, [state: string, age: number]>): RouterBinding[] {
  return parseRouterBindings(
    Object.entries(states)
      .map(([host, [state, age]]) => `${R}\tr1\t${host}\t${state}\t${age}`)
      .join('\n'),
  );
}

const ns = (states: Record<string, NamespaceState | undefined>) =>
  new Map(
    Object.entries(states).map(([h, s]) => [h, s === undefined ? undefined : new Map([[R, s]])] as const),
  );

describe('neutron agents', () => {
  it('reads agents and names the dead, the missing and the unknown', () => {
    const records = parseAgents(
      'ctl1\tneutron-l3-agent\t3\t1\nctl2\tneutron-l3-agent\t45\t1\nctl9\tneutron-l3-agent\t2\t0\n',
    );
    expect(records[1]).toEqual({ host: 'ctl2', binary: 'neutron-l3-agent', ageSeconds: 45, adminUp: true });
    const expected = ['ctl1', 'ctl2', 'ctl3'].map((host) => ({ host, binary: 'neutron-l3-agent' }));
    const s = agentStatus(records, expected, DOWN, 'neutron-l3-agent');
    expect(s.problems).toEqual([
      'neutron-l3-agent: neutron-l3-agent on ctl2 is dead (last report 45 s ago)',
      'neutron-l3-agent: neutron-l3-agent on ctl3 has never reported',
      'neutron-l3-agent: neutron-l3-agent on ctl9 is registered but not in the inventory',
    ]);
    expect(s.lines.join('\n')).toMatch(/ctl2 +DEAD \(45 s ago\)/);
    expect(s.lines.join('\n')).toMatch(/ctl9 +alive \(2 s ago\) admin down/);
  });

  it('is whole when every expected agent reports', () => {
    const records = parseAgents('ctl1\tneutron-dhcp-agent\t0\t1\n');
    expect(
      agentStatus(records, [{ host: 'ctl1', binary: 'neutron-dhcp-agent' }], DOWN, 'x').problems,
    ).toEqual([]);
  });
});

describe('HA routers', () => {
  it('one primary, seen in its namespace: whole', () => {
    const s = routerStatus(
      bindings({ ctl1: ['standby', 1], ctl2: ['active', 1], ctl3: ['standby', 2] }),
      ns({ ctl1: 'standby', ctl2: 'active', ctl3: 'standby' }),
      DOWN,
    );
    expect(s.problems).toEqual([]);
    // Only the primary is starred: a standby's namespace exists but holds no address.
    expect(s.lines[1]).toBe('    r1           ctl1 standby, ctl2 active*, ctl3 standby');
    expect(s.routers).toEqual([
      {
        id: R,
        name: 'r1',
        recordedActive: ['ctl2'],
        activeInNamespaces: ['ctl2'],
        hosts: ['ctl1', 'ctl2', 'ctl3'],
      },
    ]);
    expect(s.lines.join('\n')).toContain('ctl2 active*');
  });

  it('a router whose addresses are up on two hosts is a split brain', () => {
    const s = routerStatus(
      bindings({ ctl1: ['active', 1], ctl2: ['active', 1], ctl3: ['standby', 2] }),
      ns({ ctl1: 'active', ctl2: 'active', ctl3: 'standby' }),
      DOWN,
    );
    expect(s.problems).toContain(
      'neutron-l3-agent: router r1 is active on ctl1 and ctl2 at once (split brain: both answer for its addresses)',
    );
    expect(s.problems).toContain('neutron-l3-agent: neutron records router r1 active on ctl1 and ctl2');
  });

  it('a dead agent\'s "active" does not count; a router active nowhere is an outage', () => {
    const s = routerStatus(
      bindings({ ctl1: ['standby', 1], ctl2: ['active', 90], ctl3: ['standby', 2] }),
      ns({ ctl1: 'standby', ctl2: 'standby', ctl3: 'standby' }),
      DOWN,
    );
    expect(s.routers[0]?.recordedActive).toEqual([]);
    expect(s.problems).toEqual([
      'neutron-l3-agent: router r1 is active on no host (its traffic is not forwarded)',
    ]);
    expect(s.lines.join('\n')).toContain('ctl2 unknown (agent dead)');
  });

  it('addresses left up without keepalived are a problem, and not a primary', () => {
    const s = routerStatus(
      bindings({ ctl1: ['standby', 1], ctl2: ['active', 90], ctl3: ['active', 2] }),
      ns({ ctl1: 'standby', ctl2: 'orphaned', ctl3: 'active' }),
      DOWN,
    );
    expect(s.routers[0]?.activeInNamespaces).toEqual(['ctl3']);
    expect(s.problems).toEqual([
      "neutron-l3-agent: router r1's namespace on ctl2 holds its addresses with no keepalived running",
    ]);
  });

  it('a host that cannot be asked does not make a router look lost', () => {
    const s = routerStatus(
      bindings({ ctl1: ['standby', 1], ctl2: ['active', 1] }),
      ns({ ctl1: 'standby', ctl2: undefined }),
      DOWN,
    );
    expect(s.problems).toEqual([]);
  });

  it('parses the namespace script output', () => {
    expect([...parseRouterNamespaces(`${R} active\nabc standby\ndef orphaned\nbad line\n`)]).toEqual([
      [R, 'active'],
      ['abc', 'standby'],
      ['def', 'orphaned'],
    ]);
  });
});

describe('DHCP agents per network', () => {
  it('lists the agents of each network and flags one with none alive', () => {
    const b = parseDhcpBindings('n1\ttenant\tctl1\t2\nn1\ttenant\tctl2\t40\nn2\tother\tctl3\t50\n');
    const s = dhcpStatus(b, DOWN);
    expect(s.lines).toContain('    tenant       ctl1, ctl2 (agent dead)');
    expect(s.problems).toEqual(['neutron-dhcp-agent: no live DHCP agent serves network other']);
  });
});
