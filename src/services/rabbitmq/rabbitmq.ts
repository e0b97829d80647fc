import { createHash, createHmac } from 'node:crypto';
import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { waitFor } from '../../util/wait.js';
import type { HostsContext, ServiceDeclaration, ServiceStatus } from '../contract.js';
import {
  daemonsFile,
  digest,
  ensureDirs,
  peersOnlyChange,
  readApplied,
  recordApplied,
  staleFiles,
  wantedState,
  writeFiles,
} from '../files.js';
import type {
  DeployContext,
  HostOutcome,
  RenderTarget,
  RenderedFile,
  ServiceResult,
  ServiceUnit,
} from '../types.js';
import { hostIn, hostOf, target, targetIn } from '../types.js';

export const AMQP_PORT = 5672;
export const DIST_PORT = 25672;
const HOME = '/var/lib/rabbitmq';
const CONF = '/etc/rabbitmq/rabbitmq.conf';
const DEFINITIONS = '/etc/rabbitmq/definitions.json';
export const RABBITMQ_USER = 'openstack';

export const rabbitNode = (h: HostSpec): string => `rabbit@${h.name}`;

/** epmd answers on loopback (the node's own tools) and the host's address: never on the VIP the host may hold. */
export const epmdAddresses = (t: RenderTarget): string => `127.0.0.1,${t.host.address}`;

/** Per-node environment: the Debian wrappers switch user and lose HOME (and so the cookie); these do not. */
export function rabbitEnv(t: RenderTarget): Record<string, string> {
  const octets = t.host.address.split('.').join(',');
  return {
    HOME: `${HOME}`,
    RABBITMQ_NODENAME: rabbitNode(t.host),
    RABBITMQ_USE_LONGNAME: 'false',
    RABBITMQ_CONFIG_FILE: `${CONF}`,
    RABBITMQ_CONF_ENV_FILE: '/etc/rabbitmq/rabbitmq-env.conf',
    RABBITMQ_ENABLED_PLUGINS_FILE: '/etc/rabbitmq/enabled_plugins',
    RABBITMQ_MNESIA_BASE: `${HOME}/mnesia`,
    RABBITMQ_LOG_BASE: '/var/log/rabbitmq',
    RABBITMQ_PID_FILE: '/run/rabbitmq/rabbit.pid',
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: `-kernel inet_dist_use_interface {${octets}}`,
    RABBITMQ_CTL_ERL_ARGS: `-kernel inet_dist_use_interface {${octets}}`,
    // An epmd the VM would start by itself binds these too, never every address (the VIP among them).
    ERL_EPMD_ADDRESS: epmdAddresses(t),
  };
}

export function renderRabbitmqConf(dep: Deployment, t: RenderTarget): string {
  const nodes = hostsFor(dep, 'rabbitmq')
    .map((h, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${rabbitNode(h)}`)
    .join('\n');
  return `# Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.
listeners.tcp.1 = ${t.host.address}:${AMQP_PORT}
distribution.listener.interface = ${t.host.address}
distribution.listener.port_range.min = ${DIST_PORT}
distribution.listener.port_range.max = ${DIST_PORT}

# The cluster forms at boot from this list: no join commands, every node may start at once.
cluster_formation.peer_discovery_backend = classic_config
${nodes}

# A node that finds itself in a minority pauses instead of serving a split brain.
cluster_partition_handling = pause_minority
# Peers notice a dead or cut-off node within about net_ticktime seconds (stackha's profile: 10; the default 60 hid a 30 s partition).
net_ticktime = ${dep.tuning.rabbitmq.netTicktimeSec}

# No guest user: stackha imports the OpenStack user from its definitions file.
default_user = ${RABBITMQ_USER}
default_pass = ${dep.passwords.rabbitmq_password ?? ''}
loopback_users = none
log.file.level = info
log.console = false
vm_memory_high_watermark.relative = 0.4
disk_free_limit.absolute = 50MB
`;
}

/** rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)). The salt is derived, not random,
 * so the definitions file renders the same every time and a re-deploy stays a no-op. */
export function rabbitPasswordHash(password: string, saltKey: string): string {
  const salt = createHmac('sha256', saltKey).update('stackha-rabbitmq-salt').digest().subarray(0, 4);
  const hash = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest();
  return Buffer.concat([salt, hash]).toString('base64');
}

export function renderDefinitions(dep: Deployment): string {
  const policies = dep.globals.rabbitmqMirroredQueues
    ? [
        {
          vhost: '/',
          name: 'ha-all',
          // The spec's mirrored queues (classic, 3.x only); quorum queues ignore ha-* keys.
          pattern: '^(?!(amq\\.)|(.*_fanout_)|(reply_)).*',
          'apply-to': 'queues',
          definition: { 'ha-mode': 'all', 'ha-sync-mode': 'automatic', 'ha-promote-on-shutdown': 'always' },
          priority: 0,
        },
      ]
    : [];
  const defs = {
    users: [
      {
        name: RABBITMQ_USER,
        password_hash: rabbitPasswordHash(
          dep.passwords.rabbitmq_password ?? '',
          dep.passwords.rabbitmq_cluster_cookie ?? '',
        ),
        hashing_algorithm: 'rabbit_password_hashing_sha256',
        tags: ['administrator'],
      },
    ],
    vhosts: [{ name: '/' }],
    permissions: [{ user: RABBITMQ_USER, vhost: '/', configure: '.*', write: '.*', read: '.*' }],
    policies,
  };
  return `${JSON.stringify(defs, null, 2)}\n`;
}

export function renderRabbitmq(dep: Deployment, t: RenderTarget): ServiceUnit {
  const env = rabbitEnv(t);
  return {
    files: [
      { path: CONF, content: renderRabbitmqConf(dep, t), mode: 0o600 },
      { path: '/etc/rabbitmq/enabled_plugins', content: '[].\n', mode: 0o644 },
      {
        path: '/etc/rabbitmq/rabbitmq-env.conf',
        content: '# stackha passes the environment itself\n',
        mode: 0o644,
      },
      { path: DEFINITIONS, content: renderDefinitions(dep), mode: 0o600 },
      // The VM refuses to start if the cookie is readable by others.
      { path: `${HOME}/.erlang.cookie`, content: dep.passwords.rabbitmq_cluster_cookie ?? '', mode: 0o400 },
    ],
    dirs: [
      { path: `${HOME}/mnesia`, mode: 0o750 },
      { path: '/var/log/rabbitmq', mode: 0o750 },
      { path: '/run/rabbitmq', mode: 0o755 },
    ],
    daemons: [
      // Each namespace needs its own epmd; started and tracked here so it never outlives the lab unseen.
      {
        name: 'epmd',
        argv: ['/usr/bin/epmd', '-address', epmdAddresses(t)],
        env: { HOME: env.HOME ?? '' },
        logFile: '/var/log/rabbitmq/epmd.log',
      },
      {
        name: 'rabbitmq',
        argv: ['/usr/lib/rabbitmq/bin/rabbitmq-server'],
        env,
        logFile: '/var/log/rabbitmq/server.out',
        // After a reboot (systemd), its own epmd first, or the node starts one of its own that nothing tracks.
        after: ['epmd'],
        limits: { nofile: 65536 },
      },
    ],
  };
}

/**
 * rabbitmq.conf as a running node sees it: the classic_config node list is read only at boot (peer discovery), so
 * a change of that list alone needs no restart; a booting node finds the cluster through any listed peer.
 */
export function normalizeRabbitPeers(file: RenderedFile): string {
  return file.path === CONF
    ? file.content.replace(/^cluster_formation\.classic_config\.nodes\.\d+ = .*\n/gm, '')
    : file.content;
}

/** The node's own config (definitions are applied cluster-wide, separately), its peer list normalized out of `restart`. */
export function rabbitNodeState(unit: ServiceUnit) {
  return wantedState(
    'rabbitmq',
    { ...unit, files: unit.files.filter((f) => f.path !== DEFINITIONS) },
    normalizeRabbitPeers,
  );
}
const nodeState = rabbitNodeState;

/** Runs one of RabbitMQ's CLI tools (rabbitmqctl, rabbitmq-queues, rabbitmq-upgrade, rabbitmq-diagnostics) on the host against its own node. */
export function rabbitTool(
  host: Host,
  t: RenderTarget,
  tool: 'rabbitmqctl' | 'rabbitmq-queues' | 'rabbitmq-upgrade' | 'rabbitmq-diagnostics',
  args: readonly string[],
  timeoutMs = 60_000,
) {
  return host.exec([`/usr/lib/rabbitmq/bin/${tool}`, '-n', rabbitNode(t.host), ...args], {
    env: rabbitEnv(t),
    timeoutMs,
  });
}

/** Runs rabbitmqctl on the host against its own node. */
export function rabbitmqctl(host: Host, t: RenderTarget, args: readonly string[], timeoutMs = 60_000) {
  return rabbitTool(host, t, 'rabbitmqctl', args, timeoutMs);
}

export interface QuorumQueueMembers {
  readonly name: string;
  readonly vhost: string;
  readonly members: readonly string[];
  readonly online: readonly string[];
  readonly leader: string | undefined;
}

/** `rabbitmqctl list_queues` JSON: the quorum queues with their members, online members and leader. */
export function parseQuorumQueues(json: string): QuorumQueueMembers[] {
  const rows = JSON.parse(json) as {
    name: string;
    vhost?: string;
    type?: string;
    members?: string[] | string;
    online?: string[] | string;
    leader?: string;
  }[];
  const list = (v: string[] | string | undefined): string[] => (Array.isArray(v) ? v : []);
  return rows
    .filter((r) => r.type === 'quorum')
    .map((r) => ({
      name: r.name,
      vhost: r.vhost ?? '/',
      members: list(r.members),
      online: list(r.online),
      leader: r.leader || undefined,
    }));
}

/** Every quorum queue of the `/` vhost (the only one stackha creates), as the host's node sees them. */
export async function quorumQueues(host: Host, t: RenderTarget): Promise<QuorumQueueMembers[]> {
  const r = await rabbitmqctl(
    host,
    t,
    ['list_queues', 'name', 'type', 'members', 'online', 'leader', '--formatter', 'json'],
    30_000,
  );
  if (r.code !== 0) throw new Error(`RabbitMQ on ${host.name}: list_queues failed: ${r.stderr.trim()}`);
  return parseQuorumQueues(r.stdout);
}

/** Quorum queues that have `node` as a member but not online (yet). */
export function queuesWaitingFor(queues: readonly QuorumQueueMembers[], node: string): string[] {
  return queues.filter((q) => q.members.includes(node) && !q.online.includes(node)).map((q) => q.name);
}

/** Quorum queues of which `node` is not a member. */
export function queuesWithout(queues: readonly QuorumQueueMembers[], node: string): string[] {
  return queues.filter((q) => !q.members.includes(node)).map((q) => q.name);
}

/** Resolves once every quorum queue with a member on `node` has it online again (after that node restarted). */
export function waitQuorumMemberOnline(host: Host, t: RenderTarget, node: string, timeoutMs = 120_000) {
  return waitFor(
    `quorum queues to have ${node} online`,
    async () => {
      const waiting = queuesWaitingFor((await quorumQueues(host, t).catch(() => undefined)) ?? [], node);
      return waiting.length === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 1000 },
  );
}

/**
 * Restarts one running node gracefully: waits until stopping it leaves every quorum queue a majority
 * (`await_online_quorum_plus_one`), puts it in maintenance (`rabbitmq-upgrade drain`: quorum leaders move away,
 * client connections close and reconnect to the other brokers), restarts it, revives it, and waits until every
 * quorum queue has it online again before the caller moves to the next node.
 */
/** Stops the node and its epmd, starts both from the rendered daemons, and waits until the node has booted. */
async function bounceRabbitNode(dep: Deployment, host: Host, t: RenderTarget): Promise<void> {
  await host.stopDaemon('rabbitmq', { timeoutMs: 60_000 });
  // epmd goes with its node: restarted too, so a changed epmd command line is applied and never left behind.
  await host.stopDaemon('epmd', { timeoutMs: 20_000 });
  for (const d of renderRabbitmq(dep, t).daemons) await host.startDaemon(d);
  await waitBooted(host, t);
}

export async function restartRabbitNode(
  ctx: Pick<DeployContext, 'dep' | 'log'>,
  host: Host,
  t: RenderTarget,
): Promise<void> {
  const node = rabbitNode(t.host);
  const safe = await rabbitTool(
    host,
    t,
    'rabbitmq-upgrade',
    ['await_online_quorum_plus_one', '-t', '120'],
    130_000,
  );
  if (safe.code !== 0) {
    throw new Error(
      `RabbitMQ on ${host.name}: not restarting: a quorum queue would be left without a majority ` +
        `(${safe.stderr.trim().split('\n').slice(-2).join(' ')})`,
    );
  }
  const drained = await rabbitTool(host, t, 'rabbitmq-upgrade', ['drain'], 130_000);
  if (drained.code !== 0)
    ctx.log(
      `rabbitmq on ${host.name}: drain failed (${drained.stderr.trim().split('\n').at(-1)}); restarting anyway`,
    );
  await bounceRabbitNode(ctx.dep, host, t);
  // A node restarted in maintenance mode may come back still draining: revive it (a no-op otherwise).
  await rabbitTool(host, t, 'rabbitmq-upgrade', ['revive'], 60_000);
  await waitQuorumMemberOnline(host, t, node);
}

/** Adds `node` as a member of every quorum queue (`rabbitmq-queues grow NODE all`), run through the host's node. */
export async function growQuorumQueues(host: Host, t: RenderTarget, node: string): Promise<string> {
  const r = await rabbitTool(host, t, 'rabbitmq-queues', ['grow', node, 'all'], 300_000);
  if (r.code !== 0) throw new Error(`rabbitmq-queues grow ${node} all failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Removes the replicas on `node` from every quorum queue (`rabbitmq-queues shrink NODE`). */
export async function shrinkQuorumQueues(host: Host, t: RenderTarget, node: string): Promise<string> {
  const r = await rabbitTool(host, t, 'rabbitmq-queues', ['shrink', node], 300_000);
  if (r.code !== 0) throw new Error(`rabbitmq-queues shrink ${node} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Removes a stopped node from the cluster, run through a remaining node. */
export async function forgetClusterNode(host: Host, t: RenderTarget, node: string): Promise<void> {
  const r = await rabbitmqctl(host, t, ['forget_cluster_node', node], 120_000);
  if (r.code !== 0) throw new Error(`rabbitmqctl forget_cluster_node ${node} failed: ${r.stderr.trim()}`);
}

/** Where a node keeps its cluster membership and queue data: removed when the node leaves the cluster for good. */
export const RABBITMQ_MNESIA = `${HOME}/mnesia`;

export interface RabbitClusterStatus {
  readonly host: string;
  readonly running: boolean;
  /** Why a running node gave no cluster status (rabbitmqctl's own words), e.g. just after a peer vanished. */
  readonly unanswered?: string;
  readonly runningNodes: readonly string[];
  readonly diskNodes: readonly string[];
  readonly partitions: readonly string[];
  readonly alarms: readonly string[];
}

/** `running`: the caller has just seen the node's process run (its own check is then skipped: one command less). */
export async function rabbitClusterStatus(
  host: Host,
  t: RenderTarget,
  running?: true,
): Promise<RabbitClusterStatus> {
  const empty = {
    host: host.name,
    running: false,
    runningNodes: [],
    diskNodes: [],
    partitions: [],
    alarms: [],
  };
  if (!running && (await host.daemonPid('rabbitmq')) === undefined) return empty;
  const r = await rabbitmqctl(host, t, ['cluster_status', '--formatter', 'json', '--timeout', '5'], 30_000);
  const unanswered = (why: string) => {
    // rabbitmqctl ends a failure with its usage text: the cause is its `Error:` line.
    const lines = why.trim().split('\n').filter(Boolean);
    const cause = lines.find((l) => l.startsWith('Error')) ?? lines.at(-1);
    return { ...empty, running: true, unanswered: cause?.slice(0, 200) || 'no answer' };
  };
  if (r.code !== 0) return unanswered(r.stderr || r.stdout || `rabbitmqctl exited ${r.code}`);
  try {
    const j = JSON.parse(r.stdout) as {
      running_nodes?: string[];
      disk_nodes?: string[];
      partitions?: Record<string, string[]>;
      alarms?: { node: string; type: string; resource?: string }[];
    };
    return {
      host: host.name,
      running: true,
      runningNodes: [...(j.running_nodes ?? [])].sort(),
      diskNodes: [...(j.disk_nodes ?? [])].sort(),
      partitions: Object.entries(j.partitions ?? {}).map(([n, ps]) => `${n} cannot see ${ps.join(', ')}`),
      alarms: (j.alarms ?? []).map((a) => `${a.node}: ${a.type}${a.resource ? ` ${a.resource}` : ''}`),
    };
  } catch {
    return unanswered('cluster_status printed no JSON');
  }
}

/** How long a running node's application may stay down before deploy restarts it (unit tests shorten it). */
export const RABBIT_STUCK_GRACE = { ms: 60_000 };

/** True when the node's `rabbit` application runs (a node whose process runs may still be booting, or stuck). */
export async function rabbitAppRunning(host: Host, t: RenderTarget): Promise<boolean> {
  const r = await rabbitTool(
    host,
    t,
    'rabbitmq-diagnostics',
    ['-q', 'check_running', '--timeout', '10'],
    30_000,
  );
  return r.code === 0;
}

/**
 * The running nodes whose `rabbit` application is still not running after `graceMs`: a node that paused itself in
 * a minority (pause_minority) restarts its application when the partition heals, but on Erlang 25 it can hang for
 * good in that boot, waiting on the `global` name server ("Global hang workaround" in its log, then nothing). Its
 * process runs and answers nothing; only a restart brings it back.
 */
async function stuckRabbitNodes(
  ctx: DeployContext,
  specs: readonly HostSpec[],
  graceMs: number,
): Promise<HostSpec[]> {
  const stuck: HostSpec[] = [];
  await Promise.all(
    specs.map(async (spec) => {
      const host = hostOf(ctx, spec.name);
      const t = target(ctx, spec);
      const up = await waitFor(
        `the rabbit application on ${spec.name}`,
        async () => ((await rabbitAppRunning(host, t)) ? true : undefined),
        { timeoutMs: graceMs, intervalMs: 2000 },
      ).catch(() => false);
      if (!up) stuck.push(spec);
    }),
  );
  return stuck;
}

export async function waitBooted(host: Host, t: RenderTarget): Promise<void> {
  // `wait` on the pid file: await_startup fails at once before the node has registered with epmd.
  const r = await rabbitmqctl(host, t, ['wait', '--timeout', '240', '/run/rabbitmq/rabbit.pid'], 260_000);
  if (r.code !== 0) {
    const tail = (await host.readFile('/var/log/rabbitmq/server.out'))
      ?.trim()
      .split('\n')
      .slice(-5)
      .join('\n');
    throw new Error(
      `RabbitMQ on ${host.name} did not boot: ${r.stderr.trim().split('\n').slice(-3).join(' ')}\n${tail ?? ''}`,
    );
  }
}

/**
 * RabbitMQ: every node starts at once and classic_config peer discovery forms the cluster at boot; a node whose
 * config changed is restarted one at a time. The user, vhost, permissions and (optionally) the mirrored-queue
 * policy come from a definitions file imported once the cluster has formed.
 */
export async function deployRabbitmq(ctx: DeployContext): Promise<ServiceResult> {
  const specs = hostsFor(ctx.dep, 'rabbitmq');
  const outcomes: Record<string, HostOutcome> = {};
  const restart: HostSpec[] = [];
  const why = new Map<string, string>();
  await Promise.all(
    specs.map(async (spec) => {
      const host = hostOf(ctx, spec.name);
      const t = target(ctx, spec);
      const unit = renderRabbitmq(ctx.dep, t);
      // What a no-op needs, asked at once (each is one command over SSH); files are written once the directories are.
      const [, { stale, applied }, serverPid, epmdPid] = await Promise.all([
        ensureDirs(host, unit),
        staleFiles(host, [...unit.files, daemonsFile('rabbitmq', unit)], 'rabbitmq'),
        host.daemonPid('rabbitmq'),
        host.daemonPid('epmd'),
      ]);
      const changed = await writeFiles(host, stale);
      const want = nodeState(unit);
      const changedFiles = changed.filter((p) => p !== DEFINITIONS);
      const runningNow = serverPid !== undefined;
      if (runningNow && peersOnlyChange(applied, want)) {
        // The node list is read at boot only: the running node keeps running, the file waits for its next start.
        await recordApplied(host, 'rabbitmq', want);
        ctx.log(`rabbitmq on ${spec.name}: peers updated, no restart needed`);
        outcomes[spec.name] = 'configured';
        return;
      }
      const nodeChanged =
        changedFiles.length > 0 || applied?.config !== want.config || applied?.daemons !== want.daemons;
      why.set(
        spec.name,
        changedFiles.length > 0 ? `changed: ${changedFiles.join(', ')}` : 'config not yet applied',
      );
      if (epmdPid === undefined) {
        const epmd = unit.daemons.find((d) => d.name === 'epmd');
        if (epmd) await host.startDaemon(epmd);
      }
      if (!runningNow) {
        const server = unit.daemons.find((d) => d.name === 'rabbitmq');
        if (server) await host.startDaemon(server);
        outcomes[spec.name] = 'started';
      } else if (nodeChanged) {
        restart.push(spec);
      } else {
        outcomes[spec.name] = 'unchanged';
      }
    }),
  );
  await Promise.all(
    specs
      .filter((s) => outcomes[s.name] === 'started')
      .map(async (s) => {
        const t = target(ctx, s);
        await waitBooted(hostOf(ctx, s.name), t);
        await recordApplied(hostOf(ctx, s.name), 'rabbitmq', nodeState(renderRabbitmq(ctx.dep, t)));
      }),
  );
  // A node left running whose application does not run (booting, or hung after a partition) is given a minute, then
  // restarted: waiting on it would only time out below. Each node is asked itself (its peers may list a node whose
  // application hangs in its boot as running): one call per node, in parallel.
  const idle = specs.filter((s) => outcomes[s.name] === 'unchanged' || outcomes[s.name] === 'configured');
  const own = await Promise.all(
    idle.map(async (spec) => ({
      spec,
      // Every idle node's process was seen running above.
      s: await rabbitClusterStatus(hostOf(ctx, spec.name), target(ctx, spec), true),
    })),
  );
  let seen = own.find(({ s }) => s.running && !s.unanswered)?.s;
  const suspects = own
    .filter(({ spec, s }) => s.unanswered !== undefined || !s.runningNodes.includes(rabbitNode(spec)))
    .map(({ spec }) => spec);
  for (const spec of await stuckRabbitNodes(ctx, suspects, RABBIT_STUCK_GRACE.ms)) {
    const host = hostOf(ctx, spec.name);
    const t = target(ctx, spec);
    ctx.log(
      `rabbitmq on ${spec.name}: its node runs but its rabbit application has not for ${RABBIT_STUCK_GRACE.ms / 1000} s: restarting it`,
    );
    await bounceRabbitNode(ctx.dep, host, t);
    outcomes[spec.name] = 'restarted';
    seen = undefined;
  }
  // One node at a time, each drained first and back in every quorum queue before the next.
  for (const spec of specs.filter((s) => restart.includes(s))) {
    const host = hostOf(ctx, spec.name);
    const t = target(ctx, spec);
    ctx.log(`rabbitmq on ${spec.name}: restarting (${why.get(spec.name)})`);
    await restartRabbitNode(ctx, host, t);
    await recordApplied(host, 'rabbitmq', nodeState(renderRabbitmq(ctx.dep, t)));
    outcomes[spec.name] = 'restarted';
  }
  const first = specs[0];
  if (!first) return { service: 'rabbitmq', outcomes };
  const firstHost = hostOf(ctx, first.name);
  const ft = target(ctx, first);
  const expected = specs.map(rabbitNode).sort();
  const untouched = specs.every((s) => outcomes[s.name] === 'unchanged' || outcomes[s.name] === 'configured');
  const alreadyWhole =
    untouched && suspects.length === 0 && expected.every((n) => seen?.runningNodes.includes(n));
  if (!alreadyWhole)
    await waitFor(
      `RabbitMQ cluster of ${expected.length} nodes`,
      async () => {
        const s = await rabbitClusterStatus(firstHost, ft);
        return expected.every((n) => s.runningNodes.includes(n)) ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
  // Definitions are cluster-wide: imported through the first node whenever they differ from what it imported last.
  const defs = { config: digest(renderDefinitions(ctx.dep)), daemons: '' };
  const importedDefs = await readApplied(firstHost, 'rabbitmq-definitions');
  if (importedDefs?.config !== defs.config) {
    const r = await rabbitmqctl(firstHost, ft, ['import_definitions', DEFINITIONS]);
    if (r.code !== 0)
      throw new Error(`RabbitMQ on ${first.name}: importing definitions failed: ${r.stderr.trim()}`);
    if (!ctx.dep.globals.rabbitmqMirroredQueues) {
      await rabbitmqctl(firstHost, ft, ['clear_policy', 'ha-all']);
    }
    await recordApplied(firstHost, 'rabbitmq-definitions', defs);
    if (outcomes[first.name] === 'unchanged') outcomes[first.name] = 'configured';
  }
  for (const spec of specs) ctx.log(`rabbitmq on ${spec.name}: ${outcomes[spec.name]}`);
  return { service: 'rabbitmq', outcomes };
}

/** Every quorum queue has `node` as a member (after a join), asked through `via`. */
async function growAndWait(ctx: HostsContext, via: HostSpec, node: string): Promise<void> {
  const host = hostIn(ctx, via.name);
  const t = targetIn(ctx, via);
  const out = await growQuorumQueues(host, t, node);
  ctx.log(out.trim().split('\n').slice(-3).join(' | '));
  await waitFor(
    `every quorum queue to have ${node} as a member`,
    async () => (queuesWithout(await quorumQueues(host, t), node).length === 0 ? true : undefined),
    { timeoutMs: 120_000, intervalMs: 1000 },
  );
}

/**
 * Takes `node` out of the cluster through `via` (a node that stays): its quorum queue replicas removed first, then the
 * node forgotten; then checked, so a node is never left half out (stopped, yet still listed by the others).
 */
async function removeMember(ctx: HostsContext, via: HostSpec, node: string): Promise<void> {
  const host = hostIn(ctx, via.name);
  const t = targetIn(ctx, via);
  const still = (await quorumQueues(host, t)).filter((q) => q.members.includes(node)).map((q) => q.name);
  if (still.length > 0) {
    const out = await shrinkQuorumQueues(host, t, node);
    ctx.log(out.trim().split('\n').slice(-3).join(' | '));
    const left = (await quorumQueues(host, t)).filter((q) => q.members.includes(node)).map((q) => q.name);
    if (left.length > 0) throw new Error(`quorum queues still have a replica on ${node}: ${left.join(', ')}`);
  }
  const status = await rabbitClusterStatus(host, t);
  if (status.diskNodes.includes(node) || status.runningNodes.includes(node)) {
    await forgetClusterNode(host, t, node);
    const after = await rabbitClusterStatus(host, t);
    if (after.diskNodes.includes(node))
      throw new Error(`${node} is still a member after forget_cluster_node through ${via.name}`);
    ctx.log(`${node} left the cluster (forget_cluster_node through ${via.name})`);
  }
}

export function rabbitProblems(dep: Deployment, nodes: readonly RabbitClusterStatus[]): string[] {
  const p: string[] = [];
  const expected = hostsFor(dep, 'rabbitmq').map(rabbitNode);
  for (const r of nodes) {
    if (!r.running) p.push(`rabbitmq: ${r.host} is not running`);
    else if (r.unanswered !== undefined)
      p.push(`rabbitmq: ${r.host} runs but gives no cluster status (${r.unanswered})`);
    else {
      const missing = expected.filter((n) => !r.runningNodes.includes(n));
      if (missing.length) p.push(`rabbitmq: ${r.host} does not see ${missing.join(', ')} running`);
      const extra = r.diskNodes.filter((n) => !expected.includes(n));
      if (extra.length) p.push(`rabbitmq: ${r.host} still lists ${extra.join(', ')}, not in the inventory`);
      for (const part of r.partitions) p.push(`rabbitmq: partition: ${part}`);
      for (const a of r.alarms) p.push(`rabbitmq: alarm ${a}`);
    }
  }
  return p;
}

/** RabbitMQ's part of `stackha status`. Pure. */
export function rabbitStatusOf(dep: Deployment, nodes: readonly RabbitClusterStatus[]): ServiceStatus {
  return {
    service: 'rabbitmq',
    lines: formatRabbitStatus(nodes),
    problems: rabbitProblems(dep, nodes),
    data: nodes,
  };
}

export function formatRabbitStatus(nodes: readonly RabbitClusterStatus[]): string[] {
  return [
    'RabbitMQ',
    ...nodes.map((r) =>
      r.unanswered !== undefined
        ? `  ${r.host.padEnd(8)} running  no cluster status: ${r.unanswered}`
        : `  ${r.host.padEnd(8)} ${r.running ? 'running' : 'stopped'}  members ${r.runningNodes.join(',') || '-'}  partitions ${r.partitions.length ? r.partitions.join('; ') : 'none'}  alarms ${r.alarms.length ? r.alarms.join('; ') : 'none'}`,
    ),
  ];
}

export const RABBITMQ: ServiceDeclaration = {
  name: 'rabbitmq',
  title: 'rabbitmq',
  tier: 'infra',
  enable: { key: 'enable_rabbitmq', default: true },
  groups: ['rabbitmq', 'control'],
  noHosts: 'error',
  minHosts: {
    min: 3,
    quorum: true,
    why: (n) =>
      n === 2
        ? 'a RabbitMQ cluster of 2 has no quorum to lose: quorum queues and pause_minority stop when either node fails'
        : 'a single RabbitMQ node has no quorum to lose: nothing survives its failure',
  },
  passwords: ['rabbitmq_password', 'rabbitmq_cluster_cookie'],
  packages: ['rabbitmq-server'],
  // epmd first: the node registers with it at boot.
  daemons: () => [
    { name: 'epmd', stopTimeoutMs: 20_000 },
    { name: 'rabbitmq', stopTimeoutMs: 60_000 },
  ],
  // Forgotten by the cluster: a node keeping its old membership could not join again.
  removal: [RABBITMQ_MNESIA],
  deploy: deployRabbitmq,
  wanted: (dep, t) => ({ rabbitmq: rabbitNodeState(renderRabbitmq(dep, t)) }),
  restartHost: (ctx, spec) => restartRabbitNode(ctx, hostIn(ctx, spec.name), targetIn(ctx, spec)),
  afterJoin: async (ctx, spec) => {
    const via = hostsFor(ctx.dep, 'rabbitmq').find((h) => h.name !== spec.name) ?? spec;
    await growAndWait(ctx, via, rabbitNode(spec));
  },
  beforeLeave: async (ctx, spec, remaining) => {
    const host = hostIn(ctx, spec.name);
    const via = hostsFor(remaining, 'rabbitmq')[0];
    if (!via) return;
    if ((await host.daemonPid('rabbitmq')) !== undefined) {
      // Its replicas leave first, while it still runs; maintenance mode then closes its client connections (they
      // reconnect to the other brokers) before it stops.
      const t = targetIn(ctx, spec);
      const hostStill = (await quorumQueues(hostIn(ctx, via.name), targetIn(ctx, via))).some((q) =>
        q.members.includes(rabbitNode(spec)),
      );
      if (hostStill) {
        const out = await shrinkQuorumQueues(hostIn(ctx, via.name), targetIn(ctx, via), rabbitNode(spec));
        ctx.log(out.trim().split('\n').slice(-3).join(' | '));
      }
      const drained = await rabbitTool(host, t, 'rabbitmq-upgrade', ['drain'], 130_000);
      if (drained.code !== 0)
        ctx.log(`rabbitmq-upgrade drain on ${spec.name} failed: ${drained.stderr.trim()}`);
      await host.stopDaemon('rabbitmq', { timeoutMs: 60_000 });
      await host.stopDaemon('epmd', { timeoutMs: 20_000 });
    }
    await removeMember(ctx, via, rabbitNode(spec));
  },
  forgetDead: async (ctx, spec, remaining) => {
    const via = hostsFor(remaining, 'rabbitmq')[0];
    if (via) await removeMember(ctx, via, rabbitNode(spec));
  },
  status: async (ctx) => {
    const nodes = await Promise.all(
      hostsFor(ctx.dep, 'rabbitmq').map((s) => rabbitClusterStatus(hostIn(ctx, s.name), targetIn(ctx, s))),
    );
    return rabbitStatusOf(ctx.dep, nodes);
  },
};
