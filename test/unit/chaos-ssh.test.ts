// The chaos suite over SSH: which scenarios need a lab (and are refused without one, every one named at once), what
// `all` means without a lab, which client the load runs on, and which host a DHCP fault takes down.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labRefusal } from '../../src/chaos/run.js';
import { SCENARIOS, dhcpVictim, scenarioByName } from '../../src/chaos/scenarios.js';
import { clientChoice, expand } from '../../src/cli/chaos.js';
import { buildDeployment } from '../../src/inventory/load.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const dep = buildDeployment(
  { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
  '/etc/stackha',
);

describe('scenarios that need a lab', () => {
  it('are the host crashes, the partition and the scale scenarios; the kills need none', () => {
    const labOnly = SCENARIOS.filter((s) => s.needsLab !== undefined).map((s) => `${s.name}:${s.needsLab}`);
    expect(labOnly.sort()).toEqual(
      [
        'host-partition:partition',
        'dhcp-host-crash:crash',
        'l3-agent-dies:tenant',
        'rabbitmq-dies-during-ports:tenant',
        'router-host-crash:crash',
        'scale-add-under-load:spare host',
        'scale-remove-under-load:spare host',
        'storage-host-crash:crash',
        'vip-holder-host-crash:crash',
      ].sort(),
    );
    for (const n of [
      'galera-writer-dies',
      'keystone-dies-on-one-host',
      'killed-service-rejoins',
      'galera-power-loss',
    ])
      expect(scenarioByName(n).needsLab, n).toBeUndefined();
  });

  it('are refused without a lab, with the reason; run in one', () => {
    const crash = scenarioByName('vip-holder-host-crash');
    expect(labRefusal(crash, true)).toBeUndefined();
    expect(labRefusal(crash, false)).toBe(
      'vip-holder-host-crash runs only in a lab: it crashes a host (kills every process of it and takes its link down), which stackha does not do to hosts over SSH',
    );
    expect(labRefusal(scenarioByName('host-partition'), false)).toMatch(/cuts a host's network link/);
    expect(labRefusal(scenarioByName('scale-add-under-load'), false)).toMatch(/adds a host from the lab/);
    expect(labRefusal(scenarioByName('galera-writer-dies'), false)).toBeUndefined();
  });

  it('expand: named ones are refused all at once without a lab; `all` leaves them out', () => {
    expect(expand(['galera-writer-dies'], dep, false)).toEqual(['galera-writer-dies']);
    expect(() =>
      expand(['galera-writer-dies', 'host-partition', 'vip-holder-host-crash'], dep, false),
    ).toThrow(/host-partition runs only in a lab.*\nvip-holder-host-crash runs only in a lab/s);
    expect(() => expand(['no-such'], dep, false)).toThrow(/no scenario no-such/);
    const inLab = expand(['all'], dep, true);
    const overSsh = expand(['all'], dep, false);
    expect(inLab).toContain('vip-holder-host-crash');
    expect(inLab).toContain('host-partition');
    expect(overSsh).not.toContain('vip-holder-host-crash');
    expect(overSsh).not.toContain('host-partition');
    expect(overSsh).toContain('galera-writer-dies');
    expect(inLab.filter((n) => !overSsh.includes(n)).every((n) => scenarioByName(n).needsLab)).toBe(true);
  });

  it('the client: the lab namespace for a lab inventory, this machine only when asked for hosts over SSH', () => {
    expect(clientChoice(undefined, [])).toBe('lab');
    expect(clientChoice('lab', [])).toBe('lab');
    expect(() => clientChoice('local', [])).toThrow(/this inventory is a lab/);
    expect(clientChoice('local', ['ctl1', 'ctl2'])).toBe('local');
    expect(() => clientChoice(undefined, ['ctl1', 'ctl2'])).toThrow(
      /ctl1, ctl2 are reached over SSH.*--client local/,
    );
    expect(() => clientChoice('lab', ['ctl1'])).toThrow(/ctl1 is reached over SSH/);
    expect(() => clientChoice('elsewhere', [])).toThrow(/--client: lab .* or local/);
  });
});

describe('the DHCP host a DHCP fault takes down', () => {
  it("is never the tenant's own host, and not the router's primary when another DHCP host will do", () => {
    expect(dhcpVictim(['ctl1', 'ctl2'], 'ctl1', 'ctl3')).toBe('ctl2');
    expect(dhcpVictim(['ctl2', 'ctl3'], 'ctl1', 'ctl2')).toBe('ctl3');
    // Only the primary is left off the tenant's host: it is taken (the tenant then sees the router fail over too).
    expect(dhcpVictim(['ctl1', 'ctl2'], 'ctl1', 'ctl2')).toBe('ctl2');
  });
  it('refuses a network served by one agent, or only from the tenant host', () => {
    expect(() => dhcpVictim(['ctl2'], 'ctl1', 'ctl3')).toThrow(/needs two/);
    expect(() => dhcpVictim(['ctl1'], 'ctl1', 'ctl3')).toThrow(/needs two.*\(ctl1\)/);
    expect(() => dhcpVictim([], 'ctl1', 'ctl3')).toThrow(/no host/);
  });
});
