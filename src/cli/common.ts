import type { Command } from 'commander';
import { ConfigPathError, formatWarning, quoted } from '../inventory/errors.js';
import { type LoadOptions, type LoadedDeployment, loadWithWarnings } from '../inventory/load.js';
import { type LabState, labConfigDir, readLabState } from '../lab/lab.js';
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
  const opts = () => program.opts<{ lab: string; configDir?: string; allowSingle?: boolean }>();
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
  };
  return ctx;
}
