// Service settings read from globals.yml: each service declares a table of them (src/services/contract.ts), keyed by
// the globals.yml key, each entry with its schema (type and range) and default. src/inventory/load.ts validates every
// declared setting and reports a bad value with its line; services read the validated values through readSettings,
// never from the raw YAML.
import { z } from 'zod';

/** What a setting's value looks like once read; the schema's message says it to the user. */
export interface SettingSpec<T> {
  /** Turns the YAML value (undefined when absent) into the setting, or adds an issue with the rule. */
  readonly schema: z.ZodType<T, z.ZodTypeDef, unknown>;
  /** An older stackha name still read, with a warning to rename it. */
  readonly alias?: string;
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', 'y', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'n', '0']);

/** A boolean as kolla writes them: true/false, yes/no, on/off, in any case, quoted or not. */
export function booleanSetting(fallback: boolean) {
  return z.unknown().transform((v, ctx): boolean => {
    if (v === undefined) return fallback;
    if (typeof v === 'boolean') return v;
    if (v === 1 || v === 0) return v === 1;
    if (typeof v === 'string') {
      const word = v.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
    }
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be a boolean (true/false or "yes"/"no")' });
    return z.NEVER;
  });
}

/** A whole number from min to max, written as a number or a string of digits (kolla quotes its numbers). */
export function integerSetting(fallback: number, min: number, max: number, unit = '') {
  const rule = `must be a whole number${unit ? ` of ${unit}` : ''} from ${min} to ${max}`;
  return z.unknown().transform((v, ctx): number => {
    if (v === undefined) return fallback;
    const n =
      typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: rule });
    return z.NEVER;
  });
}

/** A table of settings, as a service declares them (src/services/contract.ts). */
export type SettingsTable = Readonly<Record<string, SettingSpec<unknown>>>;

/** The validated values of a table's settings, typed by their schemas. */
export type SettingValues<T extends SettingsTable> = { readonly [K in keyof T]: z.output<T[K]['schema']> };

/**
 * A service's settings as the inventory validated them (`dep.globals.settings`), each at its default when globals.yml
 * does not set it (or the deployment was built without it, as in tests).
 */
export function readSettings<T extends SettingsTable>(
  values: Readonly<Record<string, unknown>>,
  table: T,
): SettingValues<T> {
  return Object.fromEntries(
    Object.entries(table).map(([key, spec]) => [
      key,
      key in values ? values[key] : spec.schema.parse(undefined),
    ]),
  ) as SettingValues<T>;
}

/** Every setting of a table at its default. */
export function defaultsOf(table: SettingsTable): Record<string, unknown> {
  return Object.fromEntries(Object.entries(table).map(([key, spec]) => [key, spec.schema.parse(undefined)]));
}

/** One of a fixed set of words (`kvm` or `qemu`), in any case. */
export function choiceSetting<const T extends string>(fallback: T, choices: readonly T[]) {
  const rule = `must be one of ${choices.join(', ')}`;
  return z.unknown().transform((v, ctx): T => {
    if (v === undefined) return fallback;
    const word = typeof v === 'string' ? v.trim().toLowerCase() : undefined;
    const found = choices.find((c) => c === word);
    if (found !== undefined) return found;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: rule });
    return z.NEVER;
  });
}

const INTERFACE_NAME = /^[^\s/:]{1,15}$/;

/** A network interface name, as the kernel allows them (1-15 characters, no spaces, "/" or ":"). */
export function interfaceSetting(fallback: string) {
  const rule = 'must be a network interface name (1-15 characters, no spaces, "/" or ":")';
  return z.unknown().transform((v, ctx): string => {
    if (v === undefined) return fallback;
    if (typeof v === 'string' && INTERFACE_NAME.test(v) && v !== '.' && v !== '..') return v;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: rule });
    return z.NEVER;
  });
}
