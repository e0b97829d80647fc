// The SSH key policy flags (--known-hosts, --accept-new-host-keys) are global options of the stackha program and
// reach connect() and, through it, every SSH host; without them, STACKHA_KNOWN_HOSTS / STACKHA_ACCEPT_NEW_HOST_KEYS
// still decide.
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { addGlobalOptions, cliContext } from '../../src/cli/common.js';
import { type ConnectOptions, type SshSetup, connect } from '../../src/hosts/connect.js';
import type { SshHost } from '../../src/hosts/ssh.js';
import { PASSWORD_KEYS, buildDeployment } from '../../src/inventory/load.js';

const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');

const dep = buildDeployment(
  {
    multinode:
      '[control]\nctl1 ansible_host=10.0.0.11\nctl2 ansible_host=10.0.0.12\nctl3 ansible_host=10.0.0.13\n',
    globals: 'kolla_internal_vip_address: 10.0.0.10\n',
    passwords: PASSWORDS,
  },
  '/etc/stackha',
);

/** Parses argv as the stackha program would, and returns what the subcommand handed connect(). */
async function optionsFor(args: string[]): Promise<ConnectOptions> {
  const program = addGlobalOptions(new Command().exitOverride());
  const cli = cliContext(program);
  let seen: ConnectOptions | undefined;
  program.command('probe').action(() => {
    seen = cli.connectOptions();
  });
  await program.parseAsync(['node', 'stackha', ...args, 'probe']);
  if (!seen) throw new Error('probe did not run');
  return seen;
}

/** What each SSH host is built with, for these connect options (no connection is made: open() is a no-op). */
async function setups(opts: ConnectOptions): Promise<SshSetup[]> {
  const out: SshSetup[] = [];
  await connect(dep, {
    ...opts,
    sshHost: (spec, _c, setup) => {
      out.push(setup);
      return { name: spec.name, open: async () => {}, close: () => {} } as unknown as SshHost;
    },
  });
  return out;
}

describe('SSH key policy flags', () => {
  const saved = { known: process.env.STACKHA_KNOWN_HOSTS, accept: process.env.STACKHA_ACCEPT_NEW_HOST_KEYS };
  afterEach(() => {
    for (const [k, v] of [
      ['STACKHA_KNOWN_HOSTS', saved.known],
      ['STACKHA_ACCEPT_NEW_HOST_KEYS', saved.accept],
    ] as const)
      if (v === undefined) Reflect.deleteProperty(process.env, k);
      else process.env[k] = v;
  });

  it('--known-hosts and --accept-new-host-keys reach connect() and every SSH host', async () => {
    const opts = await optionsFor(['--known-hosts', '/srv/keys/known_hosts', '--accept-new-host-keys']);
    expect(opts).toEqual({ knownHostsFile: '/srv/keys/known_hosts', acceptNewHostKeys: true });
    const s = await setups(opts);
    expect(s).toHaveLength(3);
    for (const x of s) {
      expect(x.knownHostsFile).toBe('/srv/keys/known_hosts');
      expect(x.acceptNewHostKeys).toBe(true);
    }
  });

  it('without the flags, the environment variables still decide; a flag wins over its variable', async () => {
    process.env.STACKHA_KNOWN_HOSTS = '/env/known_hosts';
    process.env.STACKHA_ACCEPT_NEW_HOST_KEYS = '1';
    const none = await optionsFor([]);
    expect(none).toEqual({});
    const [fromEnv] = await setups(none);
    expect(fromEnv?.knownHostsFile).toBe('/env/known_hosts');
    expect(fromEnv?.acceptNewHostKeys).toBe(true);

    const [flag] = await setups(await optionsFor(['--known-hosts', '/flag/known_hosts']));
    expect(flag?.knownHostsFile).toBe('/flag/known_hosts');

    Reflect.deleteProperty(process.env, 'STACKHA_ACCEPT_NEW_HOST_KEYS');
    const [refuse] = await setups(await optionsFor([]));
    expect(refuse?.acceptNewHostKeys).toBe(false);
  });

  it('an empty --known-hosts is refused with the fix', async () => {
    await expect(optionsFor(['--known-hosts', ''])).rejects.toThrow(/--known-hosts is empty/);
  });
});
