// `stackha genpwd`: fills the missing secrets of passwords.yml, keeping every existing key, value and comment.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Document, LineCounter, Scalar, type YAMLMap, isMap, isScalar, parseDocument } from 'yaml';
import { PASSWORD_KEYS } from '../model.js';
import { InventoryError } from './errors.js';

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

const HEADER = ' stackha passwords (kolla-ansible key names). Secret: keep this file mode 0600.';

/**
 * Adds every PASSWORD_KEYS key that is missing, null or empty in the passwords.yml at path, with a random value.
 * Existing keys, values and comments are kept. Writes atomically with mode 0600 (and makes an existing file 0600).
 * Returns the names of the keys created and how many of PASSWORD_KEYS already had a value.
 */
export function generatePasswords(path: string): { created: string[]; kept: number } {
  const lines = new LineCounter();
  const text = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  const doc =
    text === undefined ? new Document({}) : parseDocument(text, { prettyErrors: false, lineCounter: lines });
  const file = basename(path);
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

  const created: string[] = [];
  const fills: Fill[] = [];
  let kept = 0;
  for (const key of PASSWORD_KEYS) {
    const node = map.get(key, true);
    if (node === undefined || (isScalar(node) && (node.value === null || node.value === ''))) {
      fills.push({ key, node, value: newSecret(key) });
      created.push(key);
    } else {
      kept++;
    }
  }

  if (created.length > 0 || text === undefined) {
    const spliced = text === undefined ? undefined : spliceText(text, lines, doc, map, fills);
    writeAtomically(path, spliced ?? rewrite(doc, map, fills));
  }
  chmodSync(path, 0o600);
  return { created, kept };
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

function writeAtomically(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomString(8, ALNUM)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
