// The validated deployment model: everything the pure core renders from.
// Produced by src/inventory/load.ts from a kolla-ansible style inventory, globals.yml and passwords.yml.

/** One host as the inventory names it. */
export interface HostSpec {
  /** Inventory name, e.g. ctl1. Also the lab namespace suffix and the RabbitMQ short node name. */
  readonly name: string;
  /** Internal (management/API) IPv4 address: `ansible_host`, or the name itself when it is an address. */
  readonly address: string;
  /** Every group the host belongs to, directly or through `[group:children]`, sorted. */
  readonly groups: readonly string[];
  /** Host variables after group vars were applied (host line wins over group vars). */
  readonly vars: Readonly<Record<string, string>>;
  /**
   * The host's `network_interface`: globals.yml's when it sets one (globals.yml is extra vars in kolla-ansible, so
   * it wins), else the host's inventory variable, else eth0.
   */
  readonly networkInterface: string;
  /** The host's `api_interface` (where the VIP lives), by the same rule; defaults to its network_interface. */
  readonly apiInterface: string;
  /** How stackha reaches the host: its lab namespaces, or SSH (the inventory's `ansible_*` connection variables). */
  readonly connection: HostConnection;
}

/**
 * How a target host is reached. `ansible_connection=local` (the deployment machine) is never a target: such hosts are
 * left out of Deployment.hosts (src/inventory/connection.ts recognises them).
 */
export type HostConnection = LabConnection | SshConnection;

/** The host is the lab namespace of the same name (globals.yml sets `stackha_lab`). */
export interface LabConnection {
  readonly kind: 'lab';
  readonly lab: string;
}

/** Privilege escalation on an SSH host whose user is not root: `sudo -n` (passwordless) to `user`. */
export interface Become {
  readonly method: 'sudo';
  /** `ansible_become_user`: root (stackha needs root on its hosts). */
  readonly user: string;
}

/** A real host reached over SSH. */
export interface SshConnection {
  readonly kind: 'ssh';
  /** Where to connect: `ansible_host` (the host's internal address, HostSpec.address). */
  readonly address: string;
  /** `ansible_port` (or `name:port` on the host line), default 22. */
  readonly port: number;
  /** `ansible_user`, default root. */
  readonly user: string;
  /** `ansible_ssh_private_key_file` as written (`~/` and relative paths are resolved when connecting). */
  readonly privateKeyFile: string | undefined;
  /** Set when commands must go through sudo: the user is not root (or `ansible_become` asks for it). */
  readonly become: Become | undefined;
  /** `ansible_python_interpreter` as written, for the host's Python tools; undefined when not set. */
  readonly pythonInterpreter: string | undefined;
  /**
   * `stackha_supervisor`: how daemons are supervised on the host. Absent means `systemd` (required: a host without
   * it is refused). `auto`: systemd when the host runs it, else pid files (the default for SSH hosts of a lab, which
   * have no systemd of their own). `pidfile`: pid files even where systemd runs. See src/hosts/pidfile.ts.
   */
  readonly supervisor?: SupervisorChoice;
}

export type SupervisorChoice = 'systemd' | 'auto' | 'pidfile';

/**
 * Tuning profile: `stackha` (fast failure detection, measured on this kind of machine) or `kolla`
 * (kolla-ansible's defaults), selectable with `stackha_profile` in globals.yml so both can be compared.
 */
export type ProfileName = 'stackha' | 'kolla';

export interface Tuning {
  readonly profile: ProfileName;
  readonly haproxy: {
    /** Active checks of the Galera health endpoints (the writer's failover rides on them). */
    readonly database: CheckTuning;
    /** Active checks of the API backends. */
    readonly api: CheckTuning;
    /**
     * `timeout connect`, ms: how long a client's connection waits on a server that does not answer (a crashed host)
     * before HAProxy retries it, on another server once that one is marked down.
     */
    readonly connectTimeoutMs: number;
    /** Close sessions to a server as soon as it is marked down, so clients reconnect to the next one. */
    readonly shutdownSessionsOnDown: boolean;
    /**
     * Passive checks (`observe layer4`): this many client connections in a row that the server refuses or never
     * accepts mark it down at once, without waiting for `fall` active checks. Undefined: active checks only.
     */
    readonly markDownAfterConnectionErrors: number | undefined;
  };
  readonly keepalived: {
    /** VRRP advertisement interval in seconds (sub-second needs VRRPv3). */
    readonly advertIntSec: number;
    readonly vrrpVersion: 2 | 3;
    /** Priority of the first, second, ... loadbalancer host. */
    readonly priorities: (count: number) => number[];
    /** The track script that asks the local HAProxy: interval (s, at least 1) and results to fail / rise. */
    readonly trackScript: { readonly intervalSec: number; readonly fall: number; readonly rise: number };
    /**
     * A watcher that notices HAProxy leaving within ~0.1 s and tells keepalived through a track file (inotify), so
     * the VIP moves without waiting for the track script's next run.
     */
    readonly watchHaproxy: boolean;
  };
  readonly galera: {
    /** gcomm evs.* timeouts (ISO 8601 durations), or undefined for Galera's defaults. */
    readonly evsInactiveTimeout: string | undefined;
    readonly evsSuspectTimeout: string | undefined;
    readonly evsInstallTimeout: string | undefined;
    /** Must stay under a third of the suspect timeout. */
    readonly evsKeepalivePeriod: string | undefined;
    /** How often a node checks its peers for silence (the suspect timeout is only as precise as this). */
    readonly evsInactiveCheckPeriod: string | undefined;
    /** evs.join_retrans_period: how often a node in GATHER resends its join message until the members agree. */
    readonly evsJoinRetransPeriod: string | undefined;
    /**
     * The health agent tells the surviving nodes to evict a node whose mariadbd is certainly dead (process gone),
     * instead of every commit stalling until the suspect timeout (src/agents/galera-health.ts).
     */
    readonly evictDeadNodes: boolean;
  };
  readonly rabbitmq: {
    readonly netTicktimeSec: number;
  };
  readonly neutron: {
    /** ha_vrrp_advert_int of every HA router's keepalived (whole seconds: neutron writes VRRPv2). */
    readonly haVrrpAdvertIntSec: number;
    /** How often each agent reports to neutron-server, and after how long without a report it counts as dead. */
    readonly reportIntervalSec: number;
    readonly agentDownTimeSec: number;
  };
}

/**
 * HAProxy's active health checks of one kind of backend. A check connects within min(timeout connect, inter) and
 * then waits up to `timeoutMs` for the answer: a server that refuses the connection fails at once, a slow one only
 * after `timeoutMs`, so a busy machine's slow but healthy answer is not taken for a dead server.
 */
export interface CheckTuning {
  readonly interMs: number;
  /** Interval while a server's state is changing (after a failed check, or while it rises). */
  readonly fastinterMs: number | undefined;
  /** Interval while a server is down. */
  readonly downinterMs: number | undefined;
  readonly rise: number;
  readonly fall: number;
  /** `timeout check`: how long the answer may take once connected, ms. */
  readonly timeoutMs: number;
}

export interface Globals {
  /** kolla_internal_vip_address */
  readonly internalVip: string;
  /** network_interface as globals.yml sets it (default eth0); a host's own is HostSpec.networkInterface. */
  readonly networkInterface: string;
  /** api_interface (defaults to network_interface); a host's own is HostSpec.apiInterface. */
  readonly apiInterface: string;
  /** keepalived_virtual_router_id (1-255) */
  readonly keepalivedVirtualRouterId: number;
  /** keepalived_unicast_peers: send VRRP adverts to the peers' addresses instead of multicast. */
  readonly keepalivedUnicastPeers: boolean;
  /** Each service's `enable_*` switch as globals.yml sets it (or its default), by service name. */
  readonly enabled: Readonly<Record<string, boolean>>;
  /** om_enable_rabbitmq_quorum_queues (default true): OpenStack services declare quorum queues. */
  readonly rabbitmqQuorumQueues: boolean;
  /** om_enable_rabbitmq_high_availability (default false): classic mirrored-queue policy `ha-mode: all`. */
  readonly rabbitmqMirroredQueues: boolean;
  /** stackha_profile */
  readonly profile: ProfileName;
  /** stackha_lab: the lab whose namespaces are these hosts; undefined for real hosts. */
  readonly lab: string | undefined;
  /**
   * The settings the services declare, validated (a key globals.yml does not set is absent: a service reads its
   * default through readSettings).
   */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Every key of globals.yml as read (services read `settings`, not this). */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** passwords.yml: every secret, by kolla-ansible's key names. Never logged. */
export type Passwords = Readonly<Record<string, string>>;

export interface Deployment {
  /** Directory holding multinode, globals.yml and passwords.yml. */
  readonly configDir: string;
  /** Every host, in inventory order of first appearance. */
  readonly hosts: readonly HostSpec[];
  /** Group name -> host names, in inventory order, children expanded. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  readonly globals: Globals;
  readonly passwords: Passwords;
  readonly tuning: Tuning;
  /**
   * Where each service runs: service name -> host names, in inventory order; absent or empty when the service is off
   * (or has no host). Resolved from each service's declared groups when the inventory is read.
   */
  readonly placement: Readonly<Record<string, readonly string[]>>;
}
