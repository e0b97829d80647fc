import type { Command } from 'commander';
import { loadDeployment } from '../inventory/load.js';
import { type LabState, labConfigDir, readLabState } from '../lab/lab.js';
import type { Deployment } from '../model.js';

/** What every command needs from the global options. */
export interface CliContext {
  /** The lab name (--lab). */
  lab(): string;
  /** The config dir: --config-dir, $STACKHA_CONFIG_DIR, or the lab's /etc/stackha/<lab>. */
  configDir(): string;
  /** The validated deployment (throws InventoryError listing every problem). */
  deployment(): Deployment;
  /** The lab's state, or an error saying it is not up. */
  requireLab(): LabState;
}

export function cliContext(program: Command): CliContext {
  const opts = () => program.opts<{ lab: string; configDir?: string }>();
  const ctx: CliContext = {
    lab: () => opts().lab,
    configDir: () => opts().configDir ?? process.env.STACKHA_CONFIG_DIR ?? labConfigDir(opts().lab),
    deployment: () => loadDeployment(ctx.configDir()),
    requireLab: () => {
      const state = readLabState(opts().lab);
      if (!state) throw new Error(`lab ${opts().lab} is not up`);
      return state;
    },
  };
  return ctx;
}
