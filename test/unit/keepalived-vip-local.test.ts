// The VIP as a local address on every load balancer: the script run through a real sh, with stand-ins for `ip` and
// `sysctl` on PATH that keep their state in files, so the order (arp_ignore before route and rule), the idempotence and
// the failure paths are what a host would see.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Host } from '../../src/hosts/host.js';
import { buildDeployment } from '../../src/inventory/load.js';
import {
  VIP_LOCAL_SCRIPT,
  VIP_LOCAL_TABLE,
  ensureVipLocal,
} from '../../src/services/keepalived/keepalived.js';
import { type ExecResult, execArgv } from '../../src/util/exec.js';

const ROOT = mkdtempSync(join(tmpdir(), 'stackha-vip-local-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
const BIN = join(ROOT, 'bin');
const STATE = join(ROOT, 'state');
const LOG = join(ROOT, 'calls.log');

const FAKE_IP = `#!/bin/sh
echo "ip $*" >> "${LOG}"
case "$*" in
  "-4 route show table 17007 type local "*)
    [ -f "${STATE}/table" ] || { echo "Error: ipv4: FIB table does not exist." >&2; exit 2; }
    [ -f "${STATE}/route" ] && echo "local $8 dev lo scope host"; exit 0 ;;
  "-4 rule show priority 17007") [ -f "${STATE}/rule" ] && echo "17007: from all iif $5 lookup 17007"; exit 0 ;;
  "route add local "*" dev lo table 17007") touch "${STATE}/route" "${STATE}/table" ;;
  "route del local "*" dev lo table 17007") rm "${STATE}/route" ;;
  "rule add priority 17007 iif "*" lookup 17007") touch "${STATE}/rule" ;;
  "rule del priority 17007") rm "${STATE}/rule" ;;
  *) echo "unexpected: ip $*" >&2; exit 2 ;;
esac
`;
const FAKE_SYSCTL = `#!/bin/sh
echo "sysctl $*" >> "${LOG}"
[ -f "${STATE}/sysctl-fails" ] && { echo "sysctl: cannot stat /proc/sys/$2: No such file or directory" >&2; exit 255; }
case "$1" in
  -n) cat "${STATE}/arp_ignore" ;;
  -q) echo "\${3#*=}" > "${STATE}/arp_ignore" ;;
esac
`;

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const dep = buildDeployment(
  { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
  join(ROOT, 'config'),
);

/** A host whose commands run here through sh, with the stand-ins first on PATH. */
const shHost = {
  name: 'ctl1',
  exec: (argv: readonly string[]): Promise<ExecResult> =>
    execArgv(argv, { timeoutMs: 10_000, env: { PATH: `${BIN}:/usr/bin:/bin` } }),
} as unknown as Host;

const calls = (): string[] => (existsSync(LOG) ? readFileSync(LOG, 'utf8').trim().split('\n') : []);

describe('the VIP as a local address on every load balancer', () => {
  beforeEach(async () => {
    rmSync(ROOT, { recursive: true, force: true });
    await execArgv(['mkdir', '-p', BIN, STATE]);
    writeFileSync(join(BIN, 'ip'), FAKE_IP);
    writeFileSync(join(BIN, 'sysctl'), FAKE_SYSCTL);
    chmodSync(join(BIN, 'ip'), 0o755);
    chmodSync(join(BIN, 'sysctl'), 0o755);
    writeFileSync(join(STATE, 'arp_ignore'), '0\n');
  });

  it('sets arp_ignore, then the route, then the rule; a second run changes nothing', async () => {
    const vip = dep.globals.internalVip;
    const iface = dep.hosts[0]?.apiInterface ?? '';
    expect(await ensureVipLocal(shHost, dep, true)).toEqual([
      `arp_ignore=1 on ${iface}`,
      `${vip} local in table ${VIP_LOCAL_TABLE}`,
      `rule ${VIP_LOCAL_TABLE}: what arrives on ${iface} looks up table ${VIP_LOCAL_TABLE}`,
    ]);
    const first = calls();
    const setIgnore = first.indexOf(`sysctl -q -w net/ipv4/conf/${iface}/arp_ignore=1`);
    const addRoute = first.indexOf(`ip route add local ${vip}/32 dev lo table ${VIP_LOCAL_TABLE}`);
    const addRule = first.indexOf(
      `ip rule add priority ${VIP_LOCAL_TABLE} iif ${iface} lookup ${VIP_LOCAL_TABLE}`,
    );
    expect(setIgnore).toBeGreaterThanOrEqual(0);
    expect(addRoute).toBeGreaterThan(setIgnore);
    expect(addRule).toBeGreaterThan(addRoute);

    expect(await ensureVipLocal(shHost, dep, true)).toEqual([]);
    expect(
      calls()
        .slice(first.length)
        .some((c) => / -w | add /.test(c)),
    ).toBe(false);
  });

  it('keeps an arp_ignore already stricter, and takes rule and route away when the profile does not want them', async () => {
    writeFileSync(join(STATE, 'arp_ignore'), '2\n');
    expect(await ensureVipLocal(shHost, dep, true)).toHaveLength(2);
    expect(readFileSync(join(STATE, 'arp_ignore'), 'utf8').trim()).toBe('2');
    expect(await ensureVipLocal(shHost, dep, false)).toEqual([
      `rule ${VIP_LOCAL_TABLE} removed`,
      `${dep.globals.internalVip} no longer local in table ${VIP_LOCAL_TABLE}`,
    ]);
    expect(existsSync(join(STATE, 'route'))).toBe(false);
    expect(existsSync(join(STATE, 'rule'))).toBe(false);
    expect(await ensureVipLocal(shHost, dep, false)).toEqual([]);
  });

  it('adds no route when arp_ignore cannot be read, and says which host and what failed', async () => {
    writeFileSync(join(STATE, 'sysctl-fails'), '');
    await expect(ensureVipLocal(shHost, dep, true)).rejects.toThrow(
      /keepalived on ctl1: could not make the VIP a local address .*cannot stat/,
    );
    expect(existsSync(join(STATE, 'route'))).toBe(false);
    expect(calls().some((c) => c.startsWith('ip route add') || c.startsWith('ip rule add'))).toBe(false);
  });

  it('passes the interface and the VIP as arguments, never inside the script', () => {
    expect(VIP_LOCAL_SCRIPT).not.toContain(dep.globals.internalVip);
    expect(VIP_LOCAL_SCRIPT).toContain('set -e');
  });
});
