// A command trace for measuring where a deploy's time goes: with STACKHA_TRACE_COMMANDS=FILE, every command an SSH
// host runs appends one JSON line to FILE (host, what, when it was asked for, how long it waited for a channel and how
// long it ran). Only the program and a short label are written, never arguments beyond the first few words of a known
// shape (paths, daemon names), never stdin. Off (nothing written, nothing kept) without the variable.
import { appendFileSync } from 'node:fs';
import { MKDIR_SCRIPT, WRITE_SCRIPT } from './shell.js';

const FILE = process.env.STACKHA_TRACE_COMMANDS;
const T0 = performance.now();

export interface TraceEntry {
  readonly host: string;
  readonly what: string;
  /** ms since the process started tracing: asked for, channel acquired, finished. */
  readonly asked: number;
  readonly started: number;
  readonly ended: number;
  readonly code: number | null;
}

/** Known constant scripts, by their text, so a trace line names them instead of quoting them. */
const SCRIPTS = new Map<string, string>([
  [WRITE_SCRIPT, 'write'],
  [MKDIR_SCRIPT, 'mkdir'],
]);

/** Registers a constant script's name for the trace (the pid-file supervisor's, the batched reads'). */
export function nameScript(script: string, name: string): void {
  SCRIPTS.set(script, name);
}

/** A short label of argv: the program and, for a known script, its name and first argument. */
export function label(argv: readonly string[]): string {
  if (argv[0] === 'sh' && argv[1] === '-c' && argv[2] !== undefined) {
    const name = SCRIPTS.get(argv[2]) ?? 'sh-script';
    return [name, ...argv.slice(4, 8)].join(' ').slice(0, 120);
  }
  return argv.slice(0, 4).join(' ').slice(0, 120);
}

export const tracing = FILE !== undefined && FILE !== '';

export function now(): number {
  return Math.round((performance.now() - T0) * 10) / 10;
}

export function trace(e: TraceEntry): void {
  if (!tracing || !FILE) return;
  try {
    appendFileSync(FILE, `${JSON.stringify(e)}\n`);
  } catch {
    /* a trace must never fail a command */
  }
}
