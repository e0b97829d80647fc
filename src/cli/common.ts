import type { Command } from 'commander';
import { type ConnectOptions, type Connection, connect } from '../hosts/connect.js';
import { ConfigPathError, formatWarning, quoted } from '../inventory/errors.js';
import { type LoadOptions, type LoadedDeployment, loadWithWarnings } from '../inventory/load.js';
import { DEFAULT_LAB, type LabState, labConfigDir, readLabState } from '../lab/lab.js';
import type { Deployment } from '../model.js';

/** What every command needs from the global options. */
export interface CliContext {
  /** The lab name (--lab), checked: a bad one is a ConfigPathError, never a path. */
  lab(): string;
  /** The config dir: --config-dir, $STACKHA_CONFIG_DIR, or the lab's /etc/stackha/<lab>. */
  configDir(): string;
  /** How the inventory is read (--allow-single). */
  loadOptions(): LoadOptions;
  /** The validated deployment (throws InventoryError listing every problem). */
  deployment(): Deployment;
  /** The validated deployment and its warnings. */
  loaded(): LoadedDeployment;
  /** The validated deployment, its warnings printed to stderr. */
  deploymentWarned(): Deployment;
  /** The lab's state, or an error saying it is not up. */
  requireLab(): LabState;
  /**
   * How SSH hosts are reached: --known-hosts and --accept-new-host-keys. A flag not given is left out, so connect()
   * falls back to STACKHA_KNOWN_HOSTS / STACKHA_ACCEPT_NEW_HOST_KEYS=1, then ~/.ssh/known_hosts and refusing.
   */
  connectOptions(): ConnectOptions;
  /** connect() to the deployment's hosts with those options: every SSH host probed before this returns. */
  connect(dep: Deployment): Promise<Connection>;
}

/** The options every command takes, on the stackha program itself. */
export function addGlobalOptions(program: Command): Command {
  return program
    .option('--lab <name>', 'lab whose inventory to use (its config dir is /etc/stackha/<name>)', DEFAULT_LAB)
    .option(
      '-c, --config-dir <dir>',
      'directory holding multinode, globals.yml and passwords.yml (overrides --lab)',
    )
    .option(
      '--allow-single',
      'accept fewer hosts than high availability needs (a one-node evaluation), with a warning; like stackha_allow_single: true',
    )
    .option(
      '--known-hosts <file>',
      'known_hosts file SSH host keys are checked against (default: $STACKHA_KNOWN_HOSTS, else ~/.ssh/known_hosts)',
    )
    .option(
      '--accept-new-host-keys',
      'record the key of an SSH host the known_hosts file has no key for (like STACKHA_ACCEPT_NEW_HOST_KEYS=1); a changed key is always refused',
    );
}

const LAB_NAME = /^[a-z][a-z0-9]{0,7}$/;

/** A lab name as every lab path takes it: no "/", no "..", never empty. */
export function checkLabName(name: string): string {
  if (!LAB_NAME.test(name)) {
    throw new ConfigPathError(
      `--lab ${quoted(name)}: a lab name is 1-8 lowercase letters and digits, starting with a letter (e.g. --lab stackha)`,
    );
  }
  return name;
}

export function cliContext(program: Command): CliContext {
  const opts = () =>
    program.opts<{
      lab: string;
      configDir?: string;
      allowSingle?: boolean;
      knownHosts?: string;
      acceptNewHostKeys?: boolean;
    }>();
  const ctx: CliContext = {
    lab: () => checkLabName(opts().lab),
    configDir: () => {
      const given = opts().configDir;
      if (given === '') {
        throw new ConfigPathError(
          '--config-dir is empty: give the directory that holds multinode, globals.yml and passwords.yml',
        );
      }
      const env = process.env.STACKHA_CONFIG_DIR;
      if (given === undefined && env === '') {
        throw new ConfigPathError(
          'STACKHA_CONFIG_DIR is set but empty: unset it, or set it to the directory that holds multinode, globals.yml and passwords.yml',
        );
      }
      return given ?? env ?? labConfigDir(ctx.lab());
    },
    loadOptions: () => (opts().allowSingle ? { allowSingle: true } : {}),
    loaded: () => loadWithWarnings(ctx.configDir(), ctx.loadOptions()),
    deployment: () => ctx.loaded().deployment,
    deploymentWarned: () => {
      const { deployment, warnings } = ctx.loaded();
      for (const w of warnings) console.error(formatWarning(w));
      return deployment;
    },
    requireLab: () => {
      const state = readLabState(ctx.lab());
      if (!state) throw new Error(`lab ${ctx.lab()} is not up`);
      return state;
    },
    connectOptions: () => {
      const { knownHosts, acceptNewHostKeys } = opts();
      if (knownHosts === '')
        throw new ConfigPathError(
          '--known-hosts is empty: give the known_hosts file to check SSH host keys against',
        );
      return {
        ...(knownHosts !== undefined ? { knownHostsFile: knownHosts } : {}),
        ...(acceptNewHostKeys === true ? { acceptNewHostKeys: true } : {}),
      };
    },
    connect: (dep) => connect(dep, ctx.connectOptions()),
  };
  return ctx;
}
