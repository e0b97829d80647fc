import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { agentArgv } from '../../runtime/runtime.js';
import { hostsFor } from '../../topology.js';
import { waitFor } from '../../util/wait.js';
import { HTTP_DRAIN_MS, type ServiceDeclaration } from '../contract.js';
import { wantedState } from '../files.js';
import type { LoadBalancedService } from '../haproxy/haproxy.js';
import { apiHealthy } from '../health.js';
import { deploySimpleService, restartUnit } from '../simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from '../types.js';
import { hostIn, targetIn } from '../types.js';

export const PROBE_API_PORT = 8790;

/**
 * The lab's stand-in API: a tiny HTTP service on every control host, load-balanced on the VIP like an OpenStack
 * API, so the HTTP failure tests have a target before Keystone is deployed. On in a lab unless
 * `enable_stackha_probe_api: false`; never on real hosts.
 */
export function probeApiEnabled(dep: Deployment): boolean {
  return hostsFor(dep, 'probe-api').length > 0;
}

export function probeApiHosts(dep: Deployment) {
  return hostsFor(dep, 'probe-api');
}

/** The probe API's script under dist/. */
export const PROBE_API_AGENT = 'agents/probe-api.js';

/** The command that runs the lab's probe API on a host (src/runtime/runtime.ts). */
export function probeApiAgent(host: HostSpec): string[] {
  return agentArgv(host, PROBE_API_AGENT);
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

export function deployProbeApi(
  ctx: DeployContext,
  agent: (host: HostSpec) => readonly string[] = probeApiAgent,
): Promise<ServiceResult> {
  return deploySimpleService(ctx, {
    service: 'probe-api',
    hosts: probeApiHosts(ctx.dep),
    render: (t) => renderProbeApi(t, agent(t.host)),
    waitReady: async (host, spec) => {
      await waitFor(
        `probe API on ${spec.name}`,
        async () => ((await host.tcpConnect(spec.address, PROBE_API_PORT, 1000)) ? true : undefined),
        { timeoutMs: 15_000 },
      );
    },
  });
}

const probeApiHealthy = (host: Host): Promise<boolean> => apiHealthy(host, PROBE_API_PORT, '/healthcheck');

export const PROBE_API: ServiceDeclaration = {
  name: 'probe-api',
  title: 'probe API (lab stand-in for OpenStack APIs)',
  tier: 'infra',
  enable: { key: 'enable_stackha_probe_api', default: true },
  labOnly: true,
  // The API tier runs where the other control-plane services do.
  groups: ['memcached', 'control'],
  noHosts: 'warning',
  passwords: [],
  packages: [],
  daemons: () => [
    {
      name: 'probe-api',
      stopTimeoutMs: 20_000,
      agent: PROBE_API_AGENT,
      fronted: { backends: () => ['probe_api'], drainMs: HTTP_DRAIN_MS, healthy: probeApiHealthy },
    },
  ],
  loadBalanced: probeApiLoadBalanced,
  deploy: (ctx) => deployProbeApi(ctx),
  wanted: (_dep, t) => ({ 'probe-api': wantedState('probe-api', renderProbeApi(t, probeApiAgent(t.host))) }),
  restartHost: async (ctx, spec) => {
    const host = hostIn(ctx, spec.name);
    await restartUnit(
      host,
      renderProbeApi(targetIn(ctx, spec), probeApiAgent(spec)),
      PROBE_API.daemons(ctx.dep),
    );
    await waitFor(
      `probe API on ${spec.name}`,
      async () => ((await probeApiHealthy(host)) ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  },
};
