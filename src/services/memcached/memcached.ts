import type { Host } from '../../hosts/host.js';
import type { Deployment } from '../../model.js';
import { type SettingsTable, integerSetting, readSettings } from '../../settings.js';
import { hostsFor } from '../../topology.js';
import { waitFor } from '../../util/wait.js';
import type { ServiceDeclaration, ServiceStatus } from '../contract.js';
import { wantedState } from '../files.js';
import { restartUnit } from '../simple.js';
import { deploySimpleService } from '../simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from '../types.js';
import { hostIn, targetIn } from '../types.js';

export const MEMCACHED_PORT = 11211;

export const MEMCACHED_SETTINGS = {
  /** kolla-ansible's name; stackha's default stays 64 MB (kolla's is 256). */
  memcached_max_memory: {
    schema: integerSetting(64, 1, 1_048_576, 'megabytes'),
    alias: 'memcached_memory_mb',
  },
  memcached_connection_limit: { schema: integerSetting(5000, 1, 1_000_000) },
} as const satisfies SettingsTable;

/**
 * memcached has no config file: its command line is its config. Bound to the host's internal address only
 * (never the VIP, never 0.0.0.0) and UDP off, since it has no authentication (the spec's security note).
 */
export function renderMemcached(dep: Deployment, t: RenderTarget): ServiceUnit {
  const { memcached_max_memory: memoryMb, memcached_connection_limit: maxConnections } = readSettings(
    dep.globals.settings,
    MEMCACHED_SETTINGS,
  );
  return {
    files: [],
    dirs: [],
    daemons: [
      {
        name: 'memcached',
        argv: [
          '/usr/bin/memcached',
          '-u',
          'memcache',
          '-l',
          t.host.address,
          '-p',
          String(MEMCACHED_PORT),
          '-U',
          '0',
          '-m',
          String(memoryMb),
          '-c',
          String(maxConnections),
        ],
        logFile: '/var/log/memcached/memcached.log',
      },
    ],
  };
}

/** The `memcached_servers` list OpenStack services hash across (the spec's example, every control host). */
export function memcachedServers(dep: Deployment): string[] {
  return hostsFor(dep, 'memcached').map((h) => `${h.address}:${MEMCACHED_PORT}`);
}

export function memcachedReady(host: Host, timeoutMs = 60_000): Promise<true> {
  return waitFor(
    `memcached on ${host.name}`,
    async () => ((await host.tcpConnect(host.address, MEMCACHED_PORT, 2000)) ? true : undefined),
    { timeoutMs },
  );
}

export function deployMemcached(ctx: DeployContext): Promise<ServiceResult> {
  return deploySimpleService(ctx, {
    service: 'memcached',
    hosts: hostsFor(ctx.dep, 'memcached'),
    render: (t) => renderMemcached(ctx.dep, t),
    waitReady: async (host) => {
      await memcachedReady(host);
    },
  });
}

export interface MemcachedStatusData {
  readonly host: string;
  readonly running: boolean;
  readonly answering: boolean;
}

/** memcached's part of `stackha status`: each server answers or not. Pure. */
export function memcachedStatusOf(rows: readonly MemcachedStatusData[]): ServiceStatus {
  return {
    service: 'memcached',
    lines: [
      'Memcached',
      ...rows.map((m) => `  ${m.host.padEnd(8)} ${m.answering ? 'answering' : 'not answering'}`),
    ],
    problems: rows.filter((m) => !m.answering).map((m) => `memcached: ${m.host} is not answering`),
    data: rows,
  };
}

export const MEMCACHED: ServiceDeclaration = {
  name: 'memcached',
  title: 'memcached',
  tier: 'infra',
  enable: { key: 'enable_memcached', default: true },
  groups: ['memcached', 'control'],
  noHosts: 'warning',
  // Services encrypt what they cache in it (keystone_authtoken's memcache_secret_key).
  passwords: ['memcache_secret_key'],
  settings: MEMCACHED_SETTINGS,
  packages: ['memcached'],
  daemons: () => [{ name: 'memcached', stopTimeoutMs: 20_000 }],
  deploy: deployMemcached,
  wanted: (dep, t) => ({ memcached: wantedState('memcached', renderMemcached(dep, t)) }),
  restartHost: async (ctx, spec) => {
    const host = hostIn(ctx, spec.name);
    await restartUnit(host, renderMemcached(ctx.dep, targetIn(ctx, spec)), MEMCACHED.daemons(ctx.dep));
    await memcachedReady(host);
  },
  status: async (ctx) => {
    const rows = await Promise.all(
      hostsFor(ctx.dep, 'memcached').map(async (s) => {
        const h = hostIn(ctx, s.name);
        return {
          host: s.name,
          running: (await h.daemonPid('memcached')) !== undefined,
          answering: await h.tcpConnect(s.address, MEMCACHED_PORT, 2000),
        };
      }),
    );
    return memcachedStatusOf(rows);
  },
};
