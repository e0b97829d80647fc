// systemd units rendered from the daemon descriptions: golden files of real services' units, and the quoting rules.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DaemonSpec } from '../../src/hosts/host.js';
import {
  environmentAssignment,
  execStartLine,
  isRunningState,
  parseShow,
  renderStopDropIn,
  renderThisBootDropIn,
  renderUnit,
  systemdWord,
  unitName,
} from '../../src/hosts/systemd.js';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment } from '../../src/model.js';
import { renderHaproxy } from '../../src/services/haproxy/haproxy.js';
import { renderKeepalived } from '../../src/services/keepalived/keepalived.js';
import { renderKeystone } from '../../src/services/keystone/keystone.js';
import {
  galeraLoadBalanced,
  mariadbDaemonArgv,
  renderGaleraHealth,
} from '../../src/services/mariadb/galera.js';
import { renderMemcached } from '../../src/services/memcached/memcached.js';
import { renderRabbitmq } from '../../src/services/rabbitmq/rabbitmq.js';
import type { RenderTarget, ServiceUnit } from '../../src/services/types.js';
import { hostByName } from '../../src/topology.js';
import { expectGolden } from './golden.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const dep: Deployment = buildDeployment(
  { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
  '/etc/stackha',
);
const t: RenderTarget = { host: hostByName(dep, 'ctl1') };
const NODE = '/usr/bin/node';

function daemon(unit: ServiceUnit, name: string): DaemonSpec {
  const d = unit.daemons.find((x) => x.name === name);
  if (!d) throw new Error(`no daemon ${name}`);
  return d;
}

/** The spec startGaleraNode gives a bootstrap start: --wsrep-new-cluster now, a plain join after a reboot. */
const mariadbBootstrap: DaemonSpec = {
  name: 'mariadb',
  argv: mariadbDaemonArgv(t, true),
  bootArgv: mariadbDaemonArgv(t),
  logFile: '/var/log/mysql/mariadbd.out',
  limits: { nofile: 65536 },
};

describe('systemd units: golden files', () => {
  it('mariadb: the unit runs the plain join at boot; the bootstrap is a drop-in of this boot only', () => {
    expectGolden('systemd/stackha-mariadb.service', renderUnit(mariadbBootstrap));
    expectGolden(
      'systemd/stackha-mariadb.service.d/50-this-boot.conf',
      renderThisBootDropIn(mariadbBootstrap) ?? '',
    );
    const unit = renderUnit(mariadbBootstrap);
    expect(unit).toContain('ExecStart="/usr/sbin/mariadbd" "--defaults-file=/etc/mysql/my.cnf"\n');
    expect(unit).not.toContain('wsrep-new-cluster');
  });

  it('galera-health, rabbitmq with its epmd, memcached, haproxy, keepalived, keystone', () => {
    const health = renderGaleraHealth(dep, t, [NODE, '/opt/stackha/dist/agents/galera-health.js']);
    expectGolden('systemd/stackha-galera-health.service', renderUnit(daemon(health, 'galera-health')));
    const rabbit = renderRabbitmq(dep, t);
    expectGolden('systemd/stackha-epmd.service', renderUnit(daemon(rabbit, 'epmd')));
    expectGolden('systemd/stackha-rabbitmq.service', renderUnit(daemon(rabbit, 'rabbitmq')));
    expectGolden(
      'systemd/stackha-memcached.service',
      renderUnit(daemon(renderMemcached(dep, t), 'memcached')),
    );
    const haproxy = renderHaproxy(dep, t, galeraLoadBalanced(dep));
    expectGolden('systemd/stackha-haproxy.service', renderUnit(daemon(haproxy, 'haproxy')));
    const keepalived = renderKeepalived(dep, t, [NODE, '/opt/stackha/dist/agents/haproxy-watch.js']);
    expectGolden('systemd/stackha-keepalived.service', renderUnit(daemon(keepalived, 'keepalived')));
    expectGolden('systemd/stackha-keystone.service', renderUnit(daemon(renderKeystone(dep, t), 'keystone')));
  });

  it('every unit restarts on failure, comes back after a reboot and writes its log', () => {
    for (const spec of [mariadbBootstrap, ...renderRabbitmq(dep, t).daemons]) {
      const unit = renderUnit(spec);
      expect(unit).toContain('Restart=on-failure\n');
      expect(unit).toContain('[Install]\nWantedBy=multi-user.target\n');
      expect(unit).toContain(`StandardOutput=append:${spec.logFile}\n`);
      expect(unit).toContain('KillMode=control-group\n');
      // Only what the spec says, on the clean base: nothing of the operator's environment.
      expect(unit).not.toMatch(/OS_PASSWORD|OS_AUTH_URL/);
    }
    expect(renderUnit(daemon(renderRabbitmq(dep, t), 'rabbitmq'))).toMatch(
      /^After=network-online.target stackha-epmd.service$/m,
    );
    // The same command line at boot and now: no drop-in.
    expect(renderThisBootDropIn(daemon(renderRabbitmq(dep, t), 'rabbitmq'))).toBeUndefined();
  });
});

describe('systemd quoting', () => {
  it('keeps every word whole: spaces, quotes, backslashes, $ and % survive as written', () => {
    expect(systemdWord('plain')).toBe('"plain"');
    expect(systemdWord('')).toBe('""');
    expect(systemdWord('a b')).toBe('"a b"');
    expect(systemdWord('say "hi"')).toBe('"say \\"hi\\""');
    expect(systemdWord('C:\\dir')).toBe('"C:\\\\dir"');
    expect(systemdWord('$HOME ${X}')).toBe('"$$HOME $${X}"');
    expect(systemdWord('100%')).toBe('"100%%"');
    expect(systemdWord('a;b')).toBe('"a;b"');
    expect(systemdWord('line1\nline2\t\x01')).toBe('"line1\\nline2\\t\\x01"');
    expect(execStartLine(['/bin/echo', 'x y', "it's"])).toBe('"/bin/echo" "x y" "it\'s"');
  });

  it('refuses a program systemd would read as a prefix, and empty argv', () => {
    expect(() => execStartLine(['-/bin/true'])).toThrow(/prefix/);
    expect(() => execStartLine(['@x'])).toThrow(/prefix/);
    expect(() => execStartLine([])).toThrow(/empty/);
  });

  it('quotes Environment= assignments, which expand % but not $', () => {
    expect(environmentAssignment('HOME', '/var/lib/rabbitmq')).toBe('"HOME=/var/lib/rabbitmq"');
    expect(environmentAssignment('X', 'a "b" $c 5%')).toBe('"X=a \\"b\\" $c 5%%"');
    expect(() => environmentAssignment('BAD-NAME', 'x')).toThrow(/not valid/);
  });

  it('refuses a daemon name that is no unit name, and a log path with spaces', () => {
    expect(unitName('galera-health')).toBe('stackha-galera-health.service');
    expect(() => unitName('a/b')).toThrow(/unit name/);
    expect(() => renderUnit({ name: 'x', argv: ['/bin/true'], logFile: '/var/log/a b.log' })).toThrow(
      /absolute path/,
    );
  });

  it('renders limits and the stop drop-in', () => {
    const unit = renderUnit({
      name: 'x',
      argv: ['/bin/true'],
      logFile: '/var/log/x.log',
      limits: { nofile: 1024, nproc: 10, memlock: 'infinity' },
    });
    expect(unit).toContain('LimitNOFILE=1024\nLimitNPROC=10\nLimitMEMLOCK=infinity\n');
    expect(renderStopDropIn('SIGINT', 20_000)).toBe(
      '# stackha: how the next stop ends this daemon.\n[Service]\nKillSignal=SIGINT\nTimeoutStopSec=20\n',
    );
    expect(() => renderStopDropIn('INT' as NodeJS.Signals, 1)).toThrow(/signal/);
  });
});

describe('systemctl show', () => {
  it('parses properties and tells a running daemon from a stopped or restarting one', () => {
    const show = parseShow(
      'ActiveState=active\nSubState=running\nMainPID=4242\nExecStart={ path=/x ; argv[]=/x a=b }\n',
    );
    expect(show.MainPID).toBe('4242');
    expect(show.ExecStart).toBe('{ path=/x ; argv[]=/x a=b }');
    expect(isRunningState(show)).toBe(true);
    expect(isRunningState({ ActiveState: 'activating', SubState: 'auto-restart', MainPID: '0' })).toBe(false);
    expect(isRunningState({ ActiveState: 'inactive', SubState: 'dead', MainPID: '0' })).toBe(false);
    expect(isRunningState({ ActiveState: 'failed', SubState: 'failed', MainPID: '0' })).toBe(false);
  });
});
