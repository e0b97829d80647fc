import type { Deployment } from '../model.js';
import { hostsFor } from '../topology.js';
import { waitFor } from '../util/wait.js';
import type { LoadBalancedService } from './haproxy.js';
import { deploySimpleService } from './simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from './types.js';

export const PROBE_API_PORT = 8790;

/**
 * The lab's stand-in API: a tiny HTTP service on every control host, load-balanced on the VIP like an OpenStack
 * API, so the HTTP failure tests have a target before Keystone is deployed. On in a lab unless
 * `enable_stackha_probe_api: false`; never on real hosts.
 */
export function probeApiEnabled(dep: Deployment): boolean {
  return dep.globals.lab !== undefined && dep.globals.settings.enable_stackha_probe_api;
}

export function probeApiHosts(dep: Deployment) {
  // The API tier runs where the other control-plane services do.
  return probeApiEnabled(dep) ? hostsFor(dep, 'memcached') : [];
}

export function renderProbeApi(t: RenderTarget, agent: readonly string[]): ServiceUnit {
  return {
    files: [],
    dirs: [],
    daemons: [
      {
        name: 'probe-api',
        argv: [...agent, `${t.host.address}:${PROBE_API_PORT}`, t.host.name],
        logFile: '/var/log/stackha/probe-api.log',
      },
    ],
  };
}

export function probeApiLoadBalanced(dep: Deployment): LoadBalancedService[] {
  if (!probeApiEnabled(dep)) return [];
  return [
    {
      name: 'probe_api',
      mode: 'http',
      bind: { address: dep.globals.internalVip, port: PROBE_API_PORT },
      servers: probeApiHosts(dep).map((h) => ({ name: h.name, address: h.address, port: PROBE_API_PORT })),
      httpCheck: { path: '/healthcheck' },
      extra: ['balance roundrobin'],
    },
  ];
}

export function deployProbeApi(ctx: DeployContext, agent: readonly string[]): Promise<ServiceResult> {
  return deploySimpleService(ctx, {
    service: 'probe-api',
    hosts: probeApiHosts(ctx.dep),
    render: (t) => renderProbeApi(t, agent),
    waitReady: async (host, spec) => {
      await waitFor(
        `probe API on ${spec.name}`,
        async () => ((await host.tcpConnect(spec.address, PROBE_API_PORT, 1000)) ? true : undefined),
        { timeoutMs: 15_000 },
      );
    },
  });
}
