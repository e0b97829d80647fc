import type { Command } from 'commander';
import type { CliContext } from './common.js';

export type RegisterCommand = (program: Command, cli: CliContext) => void;

/** Command groups beyond lab/deploy/status, each in its own module. */
export const COMMANDS: RegisterCommand[] = [];
