import { readFileSync, readdirSync } from 'node:fs';

/** Process start time (clock ticks since boot) and state from /proc, or undefined when there is no such process. */
export function procStat(pid: number): { startTime: string; state: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const startTime = rest[19];
    if (state === undefined || startTime === undefined) return undefined;
    return { startTime, state };
  } catch {
    return undefined;
  }
}

/** Alive means present and not a zombie (this machine's init reaps about a second late). */
export function isAlive(pid: number, startTime?: string): boolean {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Live (not zombie) processes whose process group is `pgid`: what is left of a daemon started as a group leader. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields after the name: state, ppid, pgrp.
      if (Number(rest[2]) === pgid && rest[0] !== 'Z' && rest[0] !== 'X') out.push(Number(e));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * What stackha records of a daemon it started (one line: `<pid> <start time> <command digest>`), the same file on a
 * lab host (src/hosts/lab.ts) and on an SSH host supervised by pid files (src/hosts/pidfile.ts): the start time
 * (field 22 of /proc/<pid>/stat) tells a reused pid from the daemon, the digest tells which command line runs.
 */
export interface PidRecord {
  readonly pid: number;
  readonly startTime: string;
  /** Undefined in a record written before digests were kept: such a daemon is kept, never refused. */
  readonly command: string | undefined;
}

export function formatPidRecord(rec: PidRecord): string {
  return `${rec.pid} ${rec.startTime} ${rec.command ?? ''}`.trimEnd().concat('\n');
}

export function parsePidRecord(text: string): PidRecord | undefined {
  const [pid, startTime, command] = text.trim().split(' ');
  if (!pid || !startTime || !/^\d+$/.test(pid) || Number(pid) < 1) return undefined;
  return { pid: Number(pid), startTime, command: command || undefined };
}

/**
 * What startDaemon does given what runs: start it when nothing (alive) is recorded, keep a daemon that runs the same
 * command line and environment, refuse one that runs another (silently keeping it would leave the host running what
 * was not asked for).
 */
export type StartDecision =
  | { readonly action: 'start' }
  | { readonly action: 'keep'; readonly pid: number }
  | { readonly action: 'refuse'; readonly pid: number };

export function startDecision(rec: PidRecord | undefined, alive: boolean, command: string): StartDecision {
  if (!rec || !alive) return { action: 'start' };
  if (rec.command !== undefined && rec.command !== command) return { action: 'refuse', pid: rec.pid };
  return { action: 'keep', pid: rec.pid };
}

/** The message of a refused start, the same for every supervisor. */
export function otherCommandMessage(where: string, name: string, pid: number, detail = ''): string {
  return `${where}: ${name} already runs (pid ${pid}${detail}) with another command line than the one asked for; stop it first`;
}
