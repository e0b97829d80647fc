// `stackha genpwd`: fills the missing secrets of passwords.yml, keeping every existing key, value and comment byte
// for byte, and following a symlinked passwords.yml to the file it points to.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Document, LineCounter, Scalar, type YAMLMap, isMap, isScalar, parseDocument } from 'yaml';
import { passwordOwners } from '../services/registry.js';

/** Every key some service needs (src/services/registry.ts). */
const PASSWORD_KEYS: readonly string[] = [...passwordOwners().keys()];
import { ConfigPathError, InventoryError, describeErrno, printable } from './errors.js';
import { KOLLA_SECRET_KINDS } from './kolla-keys.js';
import { isMapPasswordKey, nestedPasswordKeys } from './load.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A uniformly random string over alphabet, from crypto.randomBytes (rejection sampling, no modulo bias). */
export function randomString(length: number, alphabet: string): string {
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit) out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A new value for a password key: the Erlang cookie is 40 uppercase letters, everything else 32 alphanumerics. */
export function newSecret(key: string): string {
  return key === 'rabbitmq_cluster_cookie' ? randomString(40, UPPER) : randomString(32, ALNUM);
}

/**
 * A value for a key of kolla-ansible's passwords.yml, of the kind kolla-genpwd gives it: a UUID, an HMAC-MD5 digest,
 * a Fernet key, a bcrypt salt, or 40 alphanumerics. stackha's own keys keep newSecret().
 */
export function newKollaSecret(key: string): string {
  if (PASSWORD_KEYS.includes(key)) return newSecret(key);
  if (KOLLA_SECRET_KINDS.uuid.has(key)) return randomUUID();
  if (KOLLA_SECRET_KINDS.hmacMd5.has(key)) return randomBytes(16).toString('hex');
  if (KOLLA_SECRET_KINDS.fernet.has(key)) {
    return randomBytes(32).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
  }
  if (KOLLA_SECRET_KINDS.bcryptSalt.has(key)) return randomString(22, `${ALNUM}./`);
  return randomString(40, ALNUM);
}

const HEADER = ' stackha passwords (kolla-ansible key names). Secret: keep this file mode 0600.';

export interface GenpwdOptions {
  /**
   * Also fill every other empty key of the file (kolla-ansible's), as kolla-genpwd would; SSH key pairs and
   * docker_registry_password are left as they are.
   */
  readonly all?: boolean;
}

export interface GenpwdResult {
  /** The file written: the passwords file, or the file its symlink points to. */
  readonly file: string;
  /** Keys that got a value. */
  readonly created: string[];
  /** How many of stackha's keys already had a value. */
  readonly kept: number;
  /** Empty keys left alone: kolla's SSH key pairs and blank-by-design keys (with --all). */
  readonly left: string[];
  /** Without --all: how many other (kolla-ansible) keys of the file are empty. */
  readonly otherEmpty: number;
  /** The mode the file had when it was not 0600 (it is 0600 now), else undefined. */
  readonly modeWas: number | undefined;
}

const isEmptyNode = (node: unknown): boolean =>
  node === undefined || node === null || (isScalar(node) && (node.value === null || node.value === ''));

/**
 * Adds every PASSWORD_KEYS key that is missing, null or empty in the passwords.yml at path, with a random value (and,
 * with `all`, every other empty key of the file). Existing keys, values and comments are kept byte for byte, in
 * UTF-8 or, when the file is not valid UTF-8, as the bytes they are (Latin-1). A symlink is followed: its target is
 * written and the link kept. Writes atomically with mode 0600 (and makes an existing file 0600). On any problem the
 * file is left as it was and the error names the path and the fix.
 */
export function generatePasswords(path: string, opts: GenpwdOptions = {}): GenpwdResult {
  if (path === '') {
    throw new ConfigPathError('the passwords file is empty: pass -p FILE or -c DIR');
  }
  const target = resolveLinks(path);
  const shown = printable(target, 200);
  const source = readIfExists(target);
  const encoding: BufferEncoding = source === undefined || isUtf8(source) ? 'utf8' : 'latin1';
  const text = source?.toString(encoding);
  const modeBefore = source === undefined ? undefined : statSync(target).mode & 0o777;

  const lines = new LineCounter();
  const doc =
    text === undefined ? new Document({}) : parseDocument(text, { prettyErrors: false, lineCounter: lines });
  const file = basename(target);
  if (doc.errors.length > 0) {
    // Only the kind and line of the error: the parser's message may quote (secret) source text.
    throw new InventoryError(
      doc.errors.map((e) => ({
        file,
        line: lines.linePos(e.pos[0]).line,
        field: '',
        message: `YAML syntax error (${e.code}); not changed`,
      })),
    );
  }
  if (text === undefined) doc.commentBefore = HEADER;
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    doc.contents = doc.createNode({});
  }
  const map = doc.contents;
  if (!isMap(map)) {
    throw new InventoryError([
      { file, line: undefined, field: '', message: 'must be a YAML mapping of key: value; not changed' },
    ]);
  }
  // A key indented under another is part of that key's value: adding it again at the top would give two values.
  const nested = nestedPasswordKeys(map, lines);
  if (nested.length > 0) {
    throw new InventoryError(
      nested.map((n) => ({
        file,
        line: n.line,
        field: n.key,
        message:
          `indented under ${n.parent}${n.parentLine ? ` (line ${n.parentLine})` : ''}, so it is part of ${n.parent}'s value, ` +
          'not a key of its own: remove the indentation; not changed',
      })),
    );
  }

  const created: string[] = [];
  const fills: Fill[] = [];
  const left: string[] = [];
  let kept = 0;
  let otherEmpty = 0;
  for (const key of PASSWORD_KEYS) {
    const node = map.get(key, true);
    if (isEmptyNode(node)) {
      fills.push({ key, node: node as Scalar | undefined, value: newSecret(key) });
      created.push(key);
    } else {
      kept++;
    }
  }
  for (const pair of map.items) {
    if (!isScalar(pair.key)) continue;
    const key = String(pair.key.value);
    if (PASSWORD_KEYS.includes(key)) continue;
    const node = pair.value;
    if (isMapPasswordKey(key)) {
      // kolla-genpwd makes RSA key pairs for these; stackha does not need them and leaves them alone.
      if (isMap(node) && node.items.every((p) => isEmptyNode(p.value))) left.push(key);
      else if (isEmptyNode(node)) left.push(key);
      continue;
    }
    if (!isEmptyNode(node)) continue;
    if (KOLLA_SECRET_KINDS.blank.has(key)) {
      if (opts.all) left.push(key);
      continue;
    }
    if (!opts.all) {
      otherEmpty++;
      continue;
    }
    fills.push({ key, node: (node ?? undefined) as Scalar | undefined, value: newKollaSecret(key) });
    created.push(key);
  }

  if (created.length > 0 || text === undefined) {
    const spliced = text === undefined ? undefined : spliceText(text, lines, doc, map, fills);
    writeAtomically(target, spliced ?? rewrite(doc, map, fills), encoding);
  }
  try {
    chmodSync(target, 0o600);
  } catch (err) {
    throw new ConfigPathError(
      `cannot make ${shown} mode 0600: ${describeErrno(err)} (run chmod 600 ${shown} as its owner or root)`,
    );
  }
  return {
    file: target,
    created,
    kept,
    left,
    otherEmpty,
    modeWas: modeBefore !== undefined && modeBefore !== 0o600 ? modeBefore : undefined,
  };
}

/** The file a path names once every symlink is followed (it may not exist yet: a dangling link is written through). */
function resolveLinks(path: string): string {
  let current = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    let link: boolean;
    try {
      link = lstatSync(current).isSymbolicLink();
    } catch {
      return current;
    }
    if (!link) return current;
    current = resolve(dirname(current), readlinkSync(current));
  }
  throw new ConfigPathError(`${printable(path, 200)}: too many levels of symbolic links`);
}

function readIfExists(path: string): Buffer | undefined {
  const shown = printable(path, 200);
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      checkWritableDir(path);
      return undefined;
    }
    if (code === 'EISDIR') {
      throw new ConfigPathError(`${shown} is a directory, not a file: pass the passwords file (-p FILE)`);
    }
    if (code === 'ENOTDIR') {
      throw new ConfigPathError(
        `cannot use ${shown}: a part of its path is a file, not a directory; pass the passwords file (-p FILE)`,
      );
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new ConfigPathError(`cannot read ${shown}: permission denied (run stackha as its owner or root)`);
    }
    throw new ConfigPathError(`cannot read ${shown}: ${describeErrno(err)}`);
  }
}

/** A new passwords file needs its directory: else one line saying which and how to fix it. */
function checkWritableDir(path: string): void {
  const dir = dirname(path);
  const shownDir = printable(dir, 200);
  try {
    if (!statSync(dir).isDirectory()) {
      throw new ConfigPathError(
        `cannot write ${printable(path, 200)}: ${shownDir} is a file, not a directory`,
      );
    }
  } catch (err) {
    if (err instanceof ConfigPathError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigPathError(
        `cannot write ${printable(path, 200)}: directory ${shownDir} does not exist (create it: mkdir -p ${shownDir})`,
      );
    }
    if (code === 'ENOTDIR') {
      throw new ConfigPathError(
        `cannot write ${printable(path, 200)}: a part of ${shownDir} is a file, not a directory`,
      );
    }
    throw new ConfigPathError(`cannot write ${printable(path, 200)}: ${describeErrno(err)}`);
  }
}

/** Whether the bytes are valid UTF-8 (else they are kept as Latin-1, byte for byte). */
function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

interface Fill {
  key: string;
  /** The existing empty value node, or undefined when the key is missing. */
  node: Scalar | undefined;
  value: string;
}

/**
 * Edits the original text in place (empty values filled, missing keys appended) so everything else stays byte
 * for byte. Returns undefined when the result would not read back as the old content plus the new keys.
 */
function spliceText(
  text: string,
  lines: LineCounter,
  doc: Document,
  map: YAMLMap,
  fills: readonly Fill[],
): string | undefined {
  if (map.flow) return undefined;
  const edits: { at: number; end: number; text: string }[] = [];
  for (const fill of fills) {
    if (!fill.node) continue;
    const range = fill.node.range;
    if (!range) return undefined;
    const [start, end] = range;
    if (start === end) {
      const before = text[start - 1] === ':' ? ' ' : '';
      const after = text[start] === '#' ? ' ' : '';
      edits.push({ at: start, end, text: `${before}${fill.value}${after}` });
    } else {
      edits.push({ at: start, end, text: fill.value });
    }
  }
  let out = text;
  for (const edit of edits.sort((a, b) => b.at - a.at))
    out = out.slice(0, edit.at) + edit.text + out.slice(edit.end);

  const appended = fills.filter((f) => !f.node);
  if (appended.length > 0) {
    const first = map.items[0]?.key;
    const range = isScalar(first) ? first.range : undefined;
    const indent = range ? ' '.repeat(lines.linePos(range[0]).col - 1) : '';
    if (out !== '' && !out.endsWith('\n')) out += '\n';
    out += appended.map((f) => `${indent}${f.key}: ${f.value}\n`).join('');
  }

  // Read it back: every old entry unchanged, every new key with its value.
  const check = parseDocument(out, { prettyErrors: false });
  if (check.errors.length > 0 || !isMap(check.contents)) return undefined;
  let oldJs: Record<string, unknown>;
  let newJs: Record<string, unknown>;
  try {
    oldJs = doc.toJS() as Record<string, unknown>;
    newJs = check.toJS() as Record<string, unknown>;
  } catch {
    return undefined;
  }
  for (const fill of fills) {
    if (newJs[fill.key] !== fill.value) return undefined;
    delete newJs[fill.key];
    delete oldJs[fill.key];
  }
  return JSON.stringify(oldJs) === JSON.stringify(newJs) ? out : undefined;
}

/** Fallback: set the values through the Document and print it again (comments kept, layout may change). */
function rewrite(doc: Document, map: YAMLMap, fills: readonly Fill[]): string {
  for (const fill of fills) {
    if (fill.node) {
      fill.node.value = fill.value;
      if (fill.node.type !== Scalar.QUOTE_DOUBLE && fill.node.type !== Scalar.QUOTE_SINGLE) {
        fill.node.type = Scalar.PLAIN;
      }
    } else {
      map.set(doc.createNode(fill.key), doc.createNode(fill.value));
    }
  }
  return doc.toString();
}

/** Writes through a temporary file in the same directory and a rename; on failure nothing is left behind. */
function writeAtomically(path: string, text: string, encoding: BufferEncoding): void {
  const dir = dirname(path);
  const shown = printable(path, 200);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomString(8, ALNUM)}.tmp`);
  // The temporary file's name is never shown: the user knows the file they asked for and its directory.
  const fail: (err: unknown) => never = (err) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new ConfigPathError(
        `cannot write ${shown}: no permission to create files in ${printable(dir, 200)} (run stackha as its owner or root)`,
      );
    }
    let dirExists = false;
    try {
      dirExists = statSync(dir).isDirectory();
    } catch {
      // reported below
    }
    if (code === 'ENOENT' && !dirExists) {
      throw new ConfigPathError(
        `cannot write ${shown}: directory ${printable(dir, 200)} does not exist (create it: mkdir -p ${printable(dir, 200)})`,
      );
    }
    if (code === 'ENOENT') {
      throw new ConfigPathError(`cannot write ${shown}: ${printable(dir, 200)} does not take new files`);
    }
    throw new ConfigPathError(`cannot write ${shown}: ${describeErrno(err)}; not changed`);
  };
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o600);
  } catch (err) {
    fail(err);
  }
  try {
    writeSync(fd, Buffer.from(text, encoding));
    fsyncSync(fd);
    closeSync(fd);
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    fail(err);
  }
}
