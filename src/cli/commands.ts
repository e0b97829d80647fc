import type { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerBootstrap } from './bootstrap.js';
import { registerChaos } from './chaos.js';
import type { CliContext } from './common.js';
import { registerKeystone } from './keystone.js';
import { registerRecover } from './recover.js';
import { registerScale } from './scale.js';

export type RegisterCommand = (program: Command, cli: CliContext) => void;

/** Command groups beyond lab/deploy/status, each in its own module. */
export const COMMANDS: RegisterCommand[] = [
  registerChaos,
  registerBench,
  registerRecover,
  registerKeystone,
  registerScale,
  registerBootstrap,
];
