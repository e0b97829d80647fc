import type { ExecOptions, ExecResult } from '../util/exec.js';

/** A long-running process stackha starts and tracks by pid on a host. */
export interface DaemonSpec {
  /** Stable name, unique per host: `mariadb`, `rabbitmq`, `haproxy`, ... */
  readonly name: string;
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Host path of the file that receives the daemon's stdout and stderr. */
  readonly logFile: string;
  /**
   * What the host runs when it boots, when that is not `argv`: a one-off start (a Galera bootstrap with
   * --wsrep-new-cluster, a start at a recovered position) must not become what a rebooted host runs. Only hosts with
   * systemd (src/hosts/systemd.ts) keep daemons across a reboot; the lab ignores it.
   */
  readonly bootArgv?: readonly string[];
  /**
   * The signal that stops it cleanly when it is not SIGTERM (uwsgi reloads on SIGTERM: SIGINT). systemd stops it with
   * this at shutdown (KillSignal=); the lab is told the signal by each stopDaemon call.
   */
  readonly stopSignal?: NodeJS.Signals;
  /** Daemons of the same host it starts after (systemd After=/Wants=); the lab starts daemons in the order asked. */
  readonly after?: readonly string[];
  /** Resource limits (systemd LimitNOFILE=, ...); the lab's daemons inherit this machine's. */
  readonly limits?: {
    readonly nofile?: number;
    readonly nproc?: number;
    readonly memlock?: number | 'infinity';
  };
}

export interface WriteOptions {
  /** File mode, e.g. 0o600 for anything holding a secret. */
  readonly mode?: number;
  /** Owner user name (e.g. `mysql`); root when omitted. */
  readonly owner?: string;
}

/** A file as one read saw it: what readFile and fileMode say of it. */
export interface FileState {
  /** undefined when it could not be read (missing, a directory). */
  readonly content: string | undefined;
  /** Permission bits, undefined when there is no such file. */
  readonly mode: number | undefined;
}

/** A directory to create with its mode and owner (Host.mkdir's arguments). */
export interface DirSpec {
  readonly path: string;
  readonly mode?: number;
  readonly owner?: string;
}

/**
 * Everything stackha does to a machine goes through a Host: the lab implementation enters a lab host's own network,
 * mount and UTS namespaces on this machine; a real host is reached over SSH. Paths given to a Host are host paths
 * (`/etc/mysql/my.cnf`), the same in the lab and on a machine.
 */
export interface Host {
  readonly name: string;
  /** The host's internal address. */
  readonly address: string;
  /** Runs argv on the host; resolves with the result whatever the exit code. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Runs argv on the host; rejects with a CommandError naming the host when it exits non-zero. */
  run(argv: readonly string[], opts?: ExecOptions): Promise<string>;
  readFile(hostPath: string): Promise<string | undefined>;
  /** Writes atomically (temporary file + rename), creating parent directories. */
  writeFile(hostPath: string, content: string, opts?: WriteOptions): Promise<void>;
  mkdir(hostPath: string, opts?: WriteOptions): Promise<void>;
  exists(hostPath: string): Promise<boolean>;
  /** Permission bits of a file (e.g. 0o600), or undefined when there is no such file. */
  fileMode(hostPath: string): Promise<number | undefined>;
  remove(hostPath: string): Promise<void>;
  /**
   * Optional batch forms, for a host where every command costs a round trip (SSH): what readFile and fileMode say of
   * each path (one read of each), and mkdir of each directory in order. Callers use readFileStates/ensureDirs
   * (src/services/files.ts), which fall back to the single calls on a host without them.
   */
  readFileStates?(hostPaths: readonly string[]): Promise<FileState[]>;
  makeDirs?(dirs: readonly DirSpec[]): Promise<void>;
  /** Starts a daemon in the foreground of its own process group and records its pid. */
  startDaemon(spec: DaemonSpec): Promise<number>;
  /** Signals the daemon's process group and waits until it is gone (SIGKILL after timeoutMs). */
  stopDaemon(name: string, opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<boolean>;
  /** Sends a signal to the daemon's process group without waiting (fault injection). */
  signalDaemon(name: string, signal: NodeJS.Signals): Promise<boolean>;
  /** The pid of the tracked daemon if it is alive (not a zombie), else undefined. */
  daemonPid(name: string): Promise<number | undefined>;
  /** Opens a TCP connection from this host; true when it is accepted within timeoutMs. */
  tcpConnect(address: string, port: number, timeoutMs?: number): Promise<boolean>;
}
