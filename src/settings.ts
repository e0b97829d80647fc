// Service settings read from globals.yml: one table keyed by the globals.yml key, each entry with the service it
// tunes, its schema (type and range) and its default. src/inventory/load.ts validates every entry and reports a bad
// value with its line; services read the validated value from `dep.globals.settings`, never from the raw YAML.
// A per-service declaration can take its own entries from here as they are.
import { z } from 'zod';

/** What a setting's value looks like once read; the schema's message says it to the user. */
interface SettingSpec<T> {
  /** The service (or stackha feature) the setting tunes. */
  readonly service: string;
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

export const SERVICE_SETTINGS = {
  fernet_token_expiry: {
    service: 'keystone',
    schema: integerSetting(86400, 60, 31_536_000, 'seconds'),
  },
  keystone_uwsgi_processes: { service: 'keystone', schema: integerSetting(2, 1, 64) },
  keystone_uwsgi_threads: { service: 'keystone', schema: integerSetting(2, 1, 64) },
  /** kolla-ansible's name; stackha's default stays 64 MB (kolla's is 256). */
  memcached_max_memory: {
    service: 'memcached',
    schema: integerSetting(64, 1, 1_048_576, 'megabytes'),
    alias: 'memcached_memory_mb',
  },
  memcached_connection_limit: { service: 'memcached', schema: integerSetting(5000, 1, 1_000_000) },
  enable_stackha_probe_api: { service: 'probe-api', schema: booleanSetting(true) },
} as const satisfies Record<string, SettingSpec<unknown>>;

export type SettingKey = keyof typeof SERVICE_SETTINGS;
/** Every service setting with its validated value (the default when globals.yml does not set it). */
export type Settings = { readonly [K in SettingKey]: z.output<(typeof SERVICE_SETTINGS)[K]['schema']> };

/** Every setting at its default. */
export function defaultSettings(): Settings {
  return Object.fromEntries(
    Object.entries(SERVICE_SETTINGS).map(([key, spec]) => [key, spec.schema.parse(undefined)]),
  ) as Settings;
}
