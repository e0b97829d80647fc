import type { Deployment, ProfileName, Tuning } from './model.js';

/** Priority of the i-th load balancer: 150/100/50 for the first three, then 40, 30, 20, 10, 5, 1. */
const STABLE_PRIORITIES = [150, 100, 50, 40, 30, 20, 10, 5] as const;

/**
 * Priorities far apart (close ones gave two masters for a moment with fast adverts), and each host's independent of
 * how many hosts there are: adding a load balancer at the end (or removing the last) leaves every other host's
 * keepalived.conf alone. That matters because reloading keepalived re-elects the master: a holder that is not the
 * highest-priority host would lose the VIP, and every client connection through it.
 */
export function spreadPriorities(count: number): number[] {
  return Array.from({ length: count }, (_, i) => STABLE_PRIORITIES[i] ?? 1);
}

/** kolla-ansible gives the loadbalancer hosts priorities 1, 2, 3 ... in inventory order, reversed here so the first host wins. */
function adjacentPriorities(count: number): number[] {
  return Array.from({ length: count }, (_, i) => count - i);
}

const PROFILES: Record<ProfileName, Tuning> = {
  // Measured on a 2-core lab (LAB-NOTES): fast checks cut the writer-failover outage from 9 s to ~3 s.
  stackha: {
    profile: 'stackha',
    haproxy: {
      // The health endpoint answers from a cached local query: cheap to check often.
      database: {
        interMs: 200,
        fastinterMs: undefined,
        downinterMs: undefined,
        rise: 2,
        fall: 2,
        timeoutMs: 2000,
      },
      // A killed backend is caught by the passive check below (its refused requests are retried elsewhere); the
      // active checks are for silent ones, and wait up to 5 s for a busy Keystone's answer before calling it dead.
      api: { interMs: 500, fastinterMs: 200, downinterMs: 500, rise: 2, fall: 3, timeoutMs: 5000 },
      connectTimeoutMs: 500,
      shutdownSessionsOnDown: true,
      // Two in a row: one dropped SYN on a busy machine is not a dead server.
      markDownAfterConnectionErrors: 2,
    },
    keepalived: {
      advertIntSec: 0.2,
      vrrpVersion: 3,
      priorities: spreadPriorities,
      trackScript: { intervalSec: 1, fall: 1, rise: 2 },
      watchHaproxy: true,
    },
    galera: {
      // A silent peer (power loss, partition) is suspected after 1 s without a word, checked every 0.25 s; a dead
      // mariadbd on a live host is evicted by its health agent at once.
      evsInactiveTimeout: 'PT3S',
      evsSuspectTimeout: 'PT1S',
      evsInstallTimeout: 'PT3S',
      evsKeepalivePeriod: 'PT0.25S',
      evsInactiveCheckPeriod: 'PT0.25S',
      // While the members agree on a new view (a node evicted, a node joining) they resend their join messages at
      // this period (default 1 s), and agreement takes a few rounds: measured, a restarted node's join stalled every
      // commit 2-3 s at 1 s and ~1.1 s at 0.1 s (Galera's minimum).
      evsJoinRetransPeriod: 'PT0.1S',
      evictDeadNodes: true,
    },
    rabbitmq: { netTicktimeSec: 10 },
    // A standby router takes over after 3 missed adverts: ~3 s at 1 s. Agents report every 10 s and count as dead
    // after 30 s (neutron's rule: at least twice the interval), so a dead host's networks are rescheduled sooner.
    neutron: { haVrrpAdvertIntSec: 1, reportIntervalSec: 10, agentDownTimeSec: 30 },
  },
  // kolla-ansible's defaults, kept selectable so both can be measured in one run.
  kolla: {
    profile: 'kolla',
    haproxy: {
      // haproxy_health_check "check inter 2000 rise 2 fall 5", haproxy_check_timeout 10s, haproxy_connect_timeout 10s.
      database: {
        interMs: 2000,
        fastinterMs: undefined,
        downinterMs: undefined,
        rise: 2,
        fall: 5,
        timeoutMs: 10_000,
      },
      api: {
        interMs: 2000,
        fastinterMs: undefined,
        downinterMs: undefined,
        rise: 2,
        fall: 5,
        timeoutMs: 10_000,
      },
      connectTimeoutMs: 10_000,
      shutdownSessionsOnDown: false,
      markDownAfterConnectionErrors: undefined,
    },
    // keepalived.conf.j2: check_alive with interval 2, fall 2, rise 10.
    keepalived: {
      advertIntSec: 1,
      vrrpVersion: 2,
      priorities: adjacentPriorities,
      trackScript: { intervalSec: 2, fall: 2, rise: 10 },
      watchHaproxy: false,
    },
    galera: {
      evsInactiveTimeout: undefined,
      evsSuspectTimeout: undefined,
      evsInstallTimeout: undefined,
      evsKeepalivePeriod: undefined,
      evsInactiveCheckPeriod: undefined,
      evsJoinRetransPeriod: undefined,
      evictDeadNodes: false,
    },
    rabbitmq: { netTicktimeSec: 60 },
    // kolla leaves neutron's own defaults.
    neutron: { haVrrpAdvertIntSec: 2, reportIntervalSec: 30, agentDownTimeSec: 75 },
  },
};

export function tuningFor(profile: ProfileName): Tuning {
  return PROFILES[profile];
}

/** The same deployment tuned with another profile (what `--profile` selects for a comparison run). */
export function withProfile(dep: Deployment, profile: ProfileName): Deployment {
  return { ...dep, globals: { ...dep.globals, profile }, tuning: tuningFor(profile) };
}
