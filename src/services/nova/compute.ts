// nova-compute on every host of the `compute` group (kolla's nova-cell role). In the lab its hypervisor is nova's
// fake virt driver: servers are scheduled, claimed in Placement, built and deleted through the real control plane
// and RPC, but no virtual machine runs. The libvirt settings a real host needs are rendered instead when
// enable_nova_fake is off (golden-tested, not run here). After the computes report, the deploy maps them into cell1
// (cell_v2 discover_hosts) so the scheduler can use them.
import type { Deployment, HostSpec } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { CommandError } from '../../util/exec.js';
import { asUser, readMarkers, writeMarker } from '../api/framework.js';
import { adminSql } from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';
import { digest } from '../files.js';
import { hostOf } from '../types.js';
import {
  NOVA_COMPUTE_CONF,
  NOVA_COMPUTE_SETTINGS,
  NOVA_LOG_DIR,
  NOVA_STATE,
  NOVA_USER,
  renderNovaComputeConf,
} from './conf.js';
import { novaManage, novaServiceStatus, novaServices, waitServicesUp } from './nova.js';

export function renderNovaCompute(dep: Deployment, host: HostSpec): OpenstackUnit {
  return {
    files: [
      { path: NOVA_COMPUTE_CONF, content: renderNovaComputeConf(dep, host), mode: 0o600, owner: NOVA_USER },
    ],
    dirs: [
      { path: '/etc/nova', mode: 0o755 },
      { path: NOVA_LOG_DIR, mode: 0o750, owner: NOVA_USER },
      { path: NOVA_STATE, mode: 0o755, owner: NOVA_USER },
      { path: `${NOVA_STATE}/instances`, mode: 0o755, owner: NOVA_USER },
      { path: `${NOVA_STATE}/tmp`, mode: 0o750, owner: NOVA_USER },
    ],
    daemons: [
      {
        name: 'nova-compute',
        // Never Debian's nova-compute.conf beside it: the ironic package's driver settings live there.
        argv: asUser(NOVA_USER, ['/usr/bin/nova-compute', '--config-file', NOVA_COMPUTE_CONF]),
        logFile: `${NOVA_LOG_DIR}/nova-compute.out`,
      },
    ],
  };
}

const computeExpected = (dep: Deployment) =>
  hostsFor(dep, 'nova-compute').map((h) => ({ host: h.name, binary: 'nova-compute' }));

export const NOVA_COMPUTE = defineOpenstackService({
  name: 'nova-compute',
  title: 'nova-compute',
  // kolla's nova switch covers its compute hosts too.
  enable: { key: 'enable_nova', default: false },
  requires: [{ service: 'nova', why: 'a compute host is driven by the conductor and scheduler' }],
  groups: ['compute'],
  noHosts: 'warning',
  passwords: ['nova_keystone_password', 'placement_keystone_password'],
  settings: NOVA_COMPUTE_SETTINGS,
  // nova-compute needs a hypervisor package: -ironic satisfies it without libvirt and qemu (the fake driver needs
  // neither). A libvirt host takes nova-compute-kvm instead.
  packages: ['nova-compute', 'nova-compute-ironic'],
  recommends: false,
  daemons: [{ name: 'nova-compute', stopTimeoutMs: 30_000 }],
  render: renderNovaCompute,
  afterStart: async (ctx, sql) => {
    const expected = computeExpected(ctx.dep);
    await waitServicesUp(sql, expected);
    // Map every compute host into cell1 once; a host added later runs it again.
    const key = 'nova-compute:discover_hosts';
    const want = digest(expected.map((e) => e.host).join(','));
    if ((await readMarkers(sql, 'nova-compute')).get(key) === want) return [];
    const control = hostsFor(ctx.dep, 'nova')[0];
    if (!control) return [];
    const started = Date.now();
    const r = await hostOf(ctx, control.name).exec(
      novaManage('cell_v2', 'discover_hosts', '--by-service', '--verbose'),
      { timeoutMs: 300_000 },
    );
    if (r.code !== 0) throw new CommandError(r, `${control.name} (nova cell_v2 discover_hosts)`);
    await writeMarker(sql, key, want, control.name);
    ctx.log(
      `nova-compute: compute hosts mapped into cell1 on ${control.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    return [control.name];
  },
  status: async (ctx) => {
    const sql = await adminSql({ dep: ctx.dep, hosts: ctx.hosts, log: ctx.log });
    const records = await novaServices(sql).catch(() => undefined);
    if (!records)
      return {
        lines: ['  services: the nova database did not answer'],
        problems: ['nova-compute: cannot read nova.services'],
        data: undefined,
      };
    const computes = records.filter((r) => r.binary === 'nova-compute');
    const own = novaServiceStatus(computes, computeExpected(ctx.dep), 'nova-compute');
    return { ...own, data: computes };
  },
});
