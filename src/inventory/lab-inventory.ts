// The inventory stackha writes for its embedded lab: a trimmed kolla-ansible multinode and a globals.yml.
import { SERVICES } from '../services/registry.js';

export interface LabInventoryOptions {
  /** Lab name (`stackha_lab`): 1-8 lowercase letters and digits, starting with a letter. */
  lab: string;
  /** Number of hosts, ctl1..ctlN. */
  hostCount: number;
  /** First three octets of the lab's /24, e.g. "198.18.0": ctlI gets .(10+I), the VIP is .10. */
  subnetPrefix: string;
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const PREFIX = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** One `enable_*: default` line per switch (several services may share one, as nova and nova-compute do). */
function enableLines(services: readonly { enable: { key: string; default: boolean } }[]): string[] {
  const keys = new Map<string, boolean>();
  for (const s of services) if (!keys.has(s.enable.key)) keys.set(s.enable.key, s.enable.default);
  return [...keys].map(([k, v]) => `${k}: ${v}`);
}

/** Renders the lab's `multinode` and `globals.yml`; both read back with buildDeployment. */
export function renderLabInventory(opts: LabInventoryOptions): { multinode: string; globals: string } {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(opts.lab)) {
    throw new Error(`lab name "${opts.lab}": 1-8 lowercase letters and digits, starting with a letter`);
  }
  if (!Number.isInteger(opts.hostCount) || opts.hostCount < 1 || opts.hostCount > 189) {
    throw new Error(`host count ${opts.hostCount}: from 1 to 189`);
  }
  if (!PREFIX.test(opts.subnetPrefix)) {
    throw new Error(`subnet prefix "${opts.subnetPrefix}": expected three octets such as 198.18.0`);
  }
  const hosts = Array.from({ length: opts.hostCount }, (_, i) => ({
    name: `ctl${i + 1}`,
    address: `${opts.subnetPrefix}.${11 + i}`,
  }));

  const multinode = [
    `# stackha lab inventory for lab "${opts.lab}": a trimmed kolla-ansible multinode (Ansible INI format).`,
    '# Each host is a network namespace of the lab; ansible_host is its internal address.',
    '# Written once by `stackha lab up` and yours to edit: stackha reads it again on every run.',
    '',
    '# The control hosts run MariaDB (Galera), RabbitMQ and memcached.',
    '[control]',
    ...hosts.map((h) => `${h.name} ansible_host=${h.address}`),
    '',
    '# The network hosts run HAProxy and keepalived (through [loadbalancer] below).',
    '[network]',
    ...hosts.map((h) => h.name),
    '',
    "# The compute hosts run nova-compute with nova's fake virt driver (a simulated hypervisor; enable_nova_fake).",
    '[compute]',
    ...hosts.map((h) => h.name),
    '',
    '[monitoring]',
    '',
    "# The storage hosts run Swift's account, container and object servers (a directory each: the lab has no disks).",
    '[storage]',
    ...hosts.map((h) => h.name),
    '',
    '[deployment]',
    '',
    '# Service groups, as in kolla-ansible: each lists the groups its service runs on.',
    '[loadbalancer:children]',
    'network',
    '',
    '[mariadb:children]',
    'control',
    '',
    '[rabbitmq:children]',
    'control',
    '',
    '[memcached:children]',
    'control',
    '',
    '[keystone:children]',
    'control',
    '',
  ].join('\n');

  const globals = [
    `# stackha lab globals for lab "${opts.lab}" (kolla-ansible globals.yml key names). Yours to edit.`,
    '---',
    '# The internal VIP: keepalived holds it on one loadbalancer host; clients connect to it.',
    `kolla_internal_vip_address: "${opts.subnetPrefix}.10"`,
    '# The interface carrying the internal network in each host (the lab wires eth0).',
    'network_interface: "eth0"',
    '# VRRP router id of the VIP (1-255), unique on the network segment.',
    'keepalived_virtual_router_id: 51',
    '# Tuning: stackha (fast failure detection) or kolla (kolla-ansible defaults).',
    'stackha_profile: stackha',
    '# The lab whose namespaces are these hosts.',
    `stackha_lab: "${opts.lab}"`,
    ...(opts.hostCount < 3
      ? [
          `# ${opts.hostCount === 1 ? 'One host' : 'Two hosts'}: not highly available (Galera and RabbitMQ need 3 for a quorum). For an`,
          '# evaluation only: with this set, stackha check and deploy warn instead of refusing.',
          'stackha_allow_single: true',
        ]
      : []),
    '# The infrastructure services to deploy.',
    ...enableLines(SERVICES.filter((s) => s.tier !== 'api' && !s.labOnly)),
    '# The OpenStack services behind the VIP (Debian packages; scripts/ensure-deps.sh installs them). Keystone is on',
    '# unless switched off; the others are on only when switched on, here as in any inventory.',
    ...enableLines(
      SERVICES.filter((s) => s.tier === 'api').map((s) => ({ enable: { ...s.enable, default: true } })),
    ),
    "# The lab has no hypervisor: nova-compute runs nova's fake virt driver (servers are records, no VM runs).",
    'enable_nova_fake: true',
    "# Each host's link to Neutron's provider network (physnet1): a second lab bridge, no address on the hosts. On",
    `# it, the namespace ${opts.lab}-out stands for the outside (the first address of the lab's external /24; see`,
    '# docs/openstack.md). Linux bridge agents, not Open vSwitch: this kernel has no OVS datapath.',
    'neutron_external_interface: "eth1"',
    '',
  ].join('\n');

  return { multinode, globals };
}

const SECTION_HEADER = /^\s*\[([^\]\s]+)\]\s*(?:[#;].*)?$/;
const firstToken = (line: string): string => line.trim().split(/\s+/)[0] ?? '';
const isEntry = (line: string): boolean => line.trim() !== '' && !/^\s*[#;]/.test(line);

/**
 * A multinode with `host` added to each group (a `[group]` host section, created at the end when missing): the first
 * group gets `host ansible_host=ADDRESS`, the others the bare name, as `lab up` writes them. A group that already
 * lists the host is left alone. Used by `stackha lab add-host` on the lab's own inventory.
 */
export function addHostToMultinode(
  text: string,
  host: string,
  address: string,
  groups: readonly string[] = ['control', 'network', 'compute', 'storage'],
): string {
  const lines = text.split('\n');
  groups.forEach((group, gi) => {
    const entry = gi === 0 ? `${host} ansible_host=${address}` : host;
    const start = lines.findIndex((l) => SECTION_HEADER.exec(l)?.[1] === group);
    if (start < 0) {
      while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
      lines.push('', `[${group}]`, entry, '');
      return;
    }
    let end = start + 1;
    while (end < lines.length && !SECTION_HEADER.test(lines[end] ?? '')) end++;
    const section = lines.slice(start + 1, end);
    if (section.some((l) => isEntry(l) && firstToken(l) === host)) return;
    // After the section's last host line, so trailing blank lines and comments stay where they were.
    let at = start + 1;
    section.forEach((l, i) => {
      if (isEntry(l)) at = start + 2 + i;
    });
    lines.splice(at, 0, entry);
  });
  return lines.join('\n');
}

/**
 * A multinode without the lines that list `host` by name in a host section (`[group]`, not `:children` or `:vars`).
 * A host reached only through a range (`ctl[1:4]`) is not removed: the caller checks the result no longer has it.
 */
export function removeHostFromMultinode(text: string, host: string): { text: string; removed: number } {
  let inHosts = false;
  let removed = 0;
  const kept = text.split('\n').filter((line) => {
    const m = SECTION_HEADER.exec(line);
    if (m) {
      inHosts = !(m[1] ?? '').includes(':');
      return true;
    }
    if (inHosts && isEntry(line) && firstToken(line) === host) {
      removed++;
      return false;
    }
    return true;
  });
  return { text: kept.join('\n'), removed };
}
