import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { hostsFor } from '../topology.js';
import { waitFor } from '../util/wait.js';
import { deploySimpleService } from './simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from './types.js';

export const MEMCACHED_PORT = 11211;

/**
 * memcached has no config file: its command line is its config. Bound to the host's internal address only
 * (never the VIP, never 0.0.0.0) and UDP off, since it has no authentication (the spec's security note).
 */
export function renderMemcached(dep: Deployment, t: RenderTarget): ServiceUnit {
  const memoryMb = dep.globals.settings.memcached_max_memory;
  const maxConnections = dep.globals.settings.memcached_connection_limit;
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
