// A host's runtime directories in a temporary directory of this machine: the runtime scripts (src/runtime/ship.ts)
// and the agents' smoke runs are really executed here (sh, base64, sha256sum, tar, node), with every host path under
// the runtime root, /etc/systemd and /run/systemd moved under the temporary root, and the host's /usr/bin/node replaced by
// a node of the test's choice. Plus a small checkout (dist/agents, package-lock.json, node_modules) to build runtime
// images from.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HOST_NODE, RUNTIME_ROOT } from '../../src/runtime/runtime.js';
import { COMMIT_SCRIPT, PROBE_SCRIPT, UNPACK_SCRIPT } from '../../src/runtime/ship.js';
import { type ExecOptions, type ExecResult, execArgv } from '../../src/util/exec.js';
import { FakeHost } from './keystone-fake.js';

const MOVED = [RUNTIME_ROOT, '/etc/systemd', '/run/systemd'];

export class LocalRoot {
  readonly root = mkdtempSync(join(tmpdir(), 'stackha-runtime-test-'));
  /** What runs as the host's /usr/bin/node. */
  node: string = process.execPath;

  /** The local path of a host path. */
  local(hostPath: string): string {
    return MOVED.some((p) => hostPath === p || hostPath.startsWith(`${p}/`))
      ? join(this.root, hostPath)
      : hostPath;
  }

  /** The commands the runtime code sends: its scripts and the host's node. */
  handles(argv: readonly string[]): boolean {
    return (argv[0] === 'sh' && argv[1] === '-c') || argv[0] === HOST_NODE || argv[0] === 'rm';
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const mapped = argv.map((w) => (w === HOST_NODE ? this.node : this.local(w)));
    return execArgv(mapped, { timeoutMs: 30_000, ...opts }).then((r) => ({ ...r, argv }));
  }

  /** Writes a file at a host path (a unit naming a runtime). */
  write(hostPath: string, content: string): void {
    const p = this.local(hostPath);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }

  /** A stand-in node that says it is `version` and runs nothing. */
  fakeNode(version: string): void {
    const p = join(this.root, 'fake-node');
    writeFileSync(p, `#!/bin/sh\necho ${version}\n`);
    chmodSync(p, 0o755);
    this.node = p;
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * A checkout to build runtimes from: two agents (one imports a dist module and an npm package, which depends on
 * another nested under it), a devDependency and an @types package nobody ships. `agentBody` changes the first agent.
 */
export function fixtureCheckout(agentBody = '// v1'): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'stackha-checkout-test-'));
  const put = (rel: string, content: string): void => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  };
  const usage = (name: string) =>
    `if (process.argv.length < 3) { process.stderr.write('usage: ${name} ARG\\n'); process.exit(2); }\n`;
  put(
    'dist/agents/alpha.js',
    `import { readFileSync } from 'node:fs';\nimport { pad } from '../lib/pad.js';\nimport left from 'leftish';\n${agentBody}\n${usage('alpha')}void readFileSync; void pad; void left;\n`,
  );
  put('dist/agents/beta.js', `import 'node:net';\n${usage('beta')}`);
  put('dist/agents/beta.js.map', '{}');
  put('dist/lib/pad.js', 'export const pad = (s) => ` ${s}`;\n');
  put('dist/cli/main.js', `import 'commander';\n`);
  put('package.json', JSON.stringify({ name: 'stackha', version: '9.9.9', type: 'module' }));
  put(
    'package-lock.json',
    JSON.stringify({
      lockfileVersion: 3,
      packages: {
        '': { dependencies: { leftish: '^1' }, devDependencies: { devthing: '^1' } },
        'node_modules/leftish': {
          version: '1.2.3',
          dependencies: { inner: '^2', '@types/whatever': '*' },
          engines: { node: '>=18.17' },
        },
        'node_modules/leftish/node_modules/inner': { version: '2.0.0' },
        'node_modules/inner': { version: '1.0.0' },
        'node_modules/@types/whatever': { version: '1.0.0' },
        'node_modules/devthing': { version: '1.0.0', dev: true },
      },
    }),
  );
  put(
    'node_modules/leftish/package.json',
    JSON.stringify({
      name: 'leftish',
      version: '1.2.3',
      type: 'module',
      main: 'index.js',
      engines: { node: '>=18.17' },
    }),
  );
  put('node_modules/leftish/index.js', `import inner from 'inner';\nexport default inner + 1;\n`);
  put('node_modules/leftish/index.d.ts', 'export default 1;\n');
  put('node_modules/leftish/LICENSE', 'MIT\n');
  put(
    'node_modules/leftish/node_modules/inner/package.json',
    JSON.stringify({ name: 'inner', version: '2.0.0', type: 'module', main: 'index.js' }),
  );
  put('node_modules/leftish/node_modules/inner/index.js', 'export default 2;\n');
  put(
    'node_modules/inner/package.json',
    JSON.stringify({ name: 'inner', version: '1.0.0', main: 'index.js' }),
  );
  put('node_modules/inner/index.js', 'module.exports = 1;\n');
  put(
    'node_modules/@types/whatever/package.json',
    JSON.stringify({ name: '@types/whatever', version: '1.0.0' }),
  );
  put('node_modules/devthing/package.json', JSON.stringify({ name: 'devthing', version: '1.0.0' }));
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** A fake host (test/unit/keystone-fake.ts) whose runtime commands run for real under a LocalRoot. */
export class RuntimeHost extends FakeHost {
  readonly runtimeRoot = new LocalRoot();

  override async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    if (!this.runtimeRoot.handles(argv)) return super.exec(argv, opts);
    this.calls.push({ op: 'exec', argv, input: opts?.input, env: opts?.env });
    return this.runtimeRoot.exec(argv, opts);
  }

  override async remove(hostPath: string): Promise<void> {
    const local = this.runtimeRoot.local(hostPath);
    if (local !== hostPath) {
      this.calls.push({ op: 'remove', path: hostPath });
      rmSync(local, { recursive: true, force: true });
    } else await super.remove(hostPath);
  }

  /** The runtime scripts it was sent (by their first distinctive line), in order. */
  runtimeScripts(): string[] {
    return this.execs((a) => a[0] === 'sh' && a[1] === '-c').map((a) => scriptName(a[2] ?? ''));
  }
}

function scriptName(script: string): string {
  if (script === PROBE_SCRIPT) return 'probe';
  if (script === UNPACK_SCRIPT) return 'unpack';
  if (script === COMMIT_SCRIPT) return 'commit';
  return 'other';
}
