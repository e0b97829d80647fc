// Galera recovery: the pure parts. grastate.dat and --wsrep-recover log parsing, state transfer classification
// from error.log text (samples captured from mariadbd 10.11 + galera-4 on this kind of machine), and the
// decision of which node to bootstrap.
import { describe, expect, it } from 'vitest';
import { type NodeFinding, decideRecovery, formatFinding } from '../../src/ops/recover.js';
import {
  type GraState,
  classifyStateTransfer,
  isKnownPosition,
  mariadbDaemonArgv,
  parseGrastate,
  parseRecoveredPosition,
  withSafeToBootstrap,
  withUnknownSeqno,
} from '../../src/services/mariadb/galera.js';

const U = '38d9ab9d-e5ab-11f1-b5a9-ab35a7b6b30b';
const V = '624d56fd-e5ab-11f1-8aee-53b9e43f55e4';

const CRASHED = `# GALERA saved state
version: 2.1
uuid:    ${U}
seqno:   -1
safe_to_bootstrap: 0`;

const CLEAN_LAST = `# GALERA saved state
version: 2.1
uuid:    ${U}
seqno:   42
safe_to_bootstrap: 1
`;

const RECOVER_LOG = `2026-11-21 12:58:55 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision 5843d8475120241667a7ce0f8a1abb6c9b43a273 server_uid MTD5d6SYQZWuNsqgYXLhOvx97rc= as process 3947
2026-11-21 12:58:55 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=55259
2026-11-21 12:58:55 0 [Note] InnoDB: log sequence number 55491; transaction id 36
2026-11-21 12:58:55 0 [Warning] InnoDB: Skipping buffer pool dump/restore during wsrep recovery.
2026-11-21 12:58:55 0 [Note] Server socket created on IP: '198.18.11.13', port: '3306'.
2026-11-21 12:58:55 0 [Note] WSREP: Recovered position: ${U}:7`;

const IST_SEGMENT = `2026-11-21 13:00:08 1 [Note] WSREP: State transfer required:
WSREP_SST: [INFO] rsync SST started on joiner (20261121 13:00:08.141)
2026-11-21 13:00:08 1 [Note] WSREP: ####### IST uuid:${V} f: 5, l: 6, STRv: 3
2026-11-21 13:00:08 1 [Note] WSREP: Prepared IST receiver for 5-6, listening at: tcp://198.18.11.12:4568
WSREP_SST: [INFO] rsync IST completed on joiner (20261121 13:00:09.702)
2026-11-21 13:00:10 3 [Note] WSREP: SST received
2026-11-21 13:00:10 3 [Note] WSREP: SST succeeded for position ${V}:4
2026-11-21 13:00:10 1 [Note] WSREP: Receiving IST: 2 writesets, seqnos 5-6
2026-11-21 13:00:10 1 [Note] WSREP: IST received: ${V}:6
2026-11-21 13:00:10 0 [Note] WSREP: Shifting JOINED -> SYNCED (TO: 6)`;

const SST_SEGMENT = `2026-11-21 12:59:13 2 [Note] WSREP: State transfer required:
WSREP_SST: [INFO] rsync SST started on joiner (20261121 12:59:13.123)
2026-11-21 12:59:13 2 [Note] WSREP: ####### IST uuid:00000000-0000-0000-0000-000000000000 f: 0, l: 14, STRv: 3
2026-11-21 12:59:13 2 [Note] WSREP: Resetting GCache seqno map due to different histories.
WSREP_SST: [INFO] rsync SST completed on joiner (20261121 12:59:15.443)
2026-11-21 12:59:16 0 [Note] WSREP: Receiving IST... 100.0% (11/11 events) complete.
2026-11-21 12:59:16 2 [Note] WSREP: IST received: ${U}:14
2026-11-21 12:59:16 0 [Note] WSREP: Shifting JOINED -> SYNCED (TO: 14)`;

describe('grastate.dat', () => {
  it('parses a crashed node (seqno -1, not safe to bootstrap)', () => {
    expect(parseGrastate(CRASHED)).toEqual({ version: '2.1', uuid: U, seqno: -1, safeToBootstrap: false });
  });

  it('parses the last node of a clean shutdown', () => {
    expect(parseGrastate(CLEAN_LAST)).toEqual({ version: '2.1', uuid: U, seqno: 42, safeToBootstrap: true });
  });

  it('leaves out what an old or damaged file does not have', () => {
    expect(parseGrastate(`version: 2.0\nuuid: ${U}\nseqno: 5\n`)).toEqual({
      version: '2.0',
      uuid: U,
      seqno: 5,
      safeToBootstrap: undefined,
    });
    expect(parseGrastate('uuid: not-a-uuid\nseqno: x\n# seqno: 9\n')).toEqual({
      version: undefined,
      uuid: undefined,
      seqno: undefined,
      safeToBootstrap: undefined,
    });
  });

  it('rewrites only the safe_to_bootstrap line', () => {
    const out = withSafeToBootstrap(CRASHED);
    expect(out).toBe(CRASHED.replace('safe_to_bootstrap: 0', 'safe_to_bootstrap: 1'));
    expect(parseGrastate(out).safeToBootstrap).toBe(true);
    expect(withSafeToBootstrap(`version: 2.0\nuuid: ${U}\nseqno: 5\n`)).toBe(
      `version: 2.0\nuuid: ${U}\nseqno: 5\nsafe_to_bootstrap: 1\n`,
    );
  });

  it('can make a node forget its seqno (forcing a full state transfer)', () => {
    const out = withUnknownSeqno(CLEAN_LAST);
    expect(parseGrastate(out)).toEqual({ version: '2.1', uuid: U, seqno: -1, safeToBootstrap: true });
    expect(out.split('\n').filter((l, i) => l !== CLEAN_LAST.split('\n')[i])).toEqual(['seqno:   -1']);
  });
});

describe('--wsrep-recover log', () => {
  it('finds the recovered position', () => {
    expect(parseRecoveredPosition(RECOVER_LOG)).toEqual({ uuid: U, seqno: 7 });
  });

  it('takes the last position when the log holds several, and accepts a GTID suffix', () => {
    const log = `${RECOVER_LOG}\n... [Note] WSREP: Recovered position: ${V}:15,0-1-15\n`;
    expect(parseRecoveredPosition(log)).toEqual({ uuid: V, seqno: 15 });
  });

  it('finds nothing when there is no position, or when the seqno runs into other text', () => {
    expect(parseRecoveredPosition('[Note] WSREP: ... skipping position recovery')).toBeUndefined();
    expect(parseRecoveredPosition('')).toBeUndefined();
    expect(parseRecoveredPosition(`WSREP: Recovered position: ${U}:72026-11-21 12:59:24`)).toBeUndefined();
  });

  it('tells an empty node’s position from a real one', () => {
    const empty = parseRecoveredPosition(
      'WSREP: Recovered position: 00000000-0000-0000-0000-000000000000:-1\n',
    );
    expect(empty).toEqual({ uuid: '00000000-0000-0000-0000-000000000000', seqno: -1 });
    expect(isKnownPosition(empty)).toBe(false);
    expect(isKnownPosition({ uuid: U, seqno: -1 })).toBe(false);
    expect(isKnownPosition({ uuid: U, seqno: 0 })).toBe(true);
  });

  it('puts the position on the command line', () => {
    const host = {
      name: 'ctl1',
      address: '198.18.0.11',
      groups: [],
      vars: {},
      networkInterface: 'eth0',
      apiInterface: 'eth0',
      connection: { kind: 'lab', lab: 'demo' } as const,
    };
    const t = { host };
    expect(mariadbDaemonArgv(t)).toEqual(['/usr/sbin/mariadbd', '--defaults-file=/etc/mysql/my.cnf']);
    expect(mariadbDaemonArgv(t, true, { uuid: U, seqno: 7 })).toEqual([
      '/usr/sbin/mariadbd',
      '--defaults-file=/etc/mysql/my.cnf',
      '--wsrep-new-cluster',
      `--wsrep-start-position=${U}:7`,
    ]);
  });
});

describe('state transfer seen in error.log', () => {
  it('recognises IST (even though the SST script runs and logs "SST received")', () => {
    expect(classifyStateTransfer(IST_SEGMENT)).toBe('IST');
  });
  it('recognises a full SST (even though it ends with an IST of what happened meanwhile)', () => {
    expect(classifyStateTransfer(SST_SEGMENT)).toBe('SST');
  });
  it('says none when no transfer was needed', () => {
    expect(classifyStateTransfer('[Note] WSREP: Shifting JOINED -> SYNCED (TO: 6)')).toBe('none');
  });
});

const gs = (uuid: string, seqno: number, safe = false): GraState => ({
  version: '2.1',
  uuid,
  seqno,
  safeToBootstrap: safe,
});

/** A stopped node whose position came from --wsrep-recover (grastate says -1). */
function crashed(host: string, seqno: number, uuid = U, safe = false): NodeFinding {
  return {
    host,
    running: false,
    state: undefined,
    clusterStatus: undefined,
    clusterSize: undefined,
    grastate: gs(uuid, -1, safe),
    position: { uuid, seqno },
    source: 'wsrep-recover',
    problem: undefined,
    recoverSeconds: 0.1,
    hasData: true,
  };
}

function lost(host: string, problem: string): NodeFinding {
  return { ...crashed(host, 0), grastate: undefined, position: undefined, source: undefined, problem };
}

function running(host: string, clusterStatus: string | undefined, state = 'Synced'): NodeFinding {
  return {
    ...crashed(host, 0),
    running: true,
    state,
    clusterStatus,
    clusterSize: 2,
    grastate: undefined,
    position: undefined,
    source: undefined,
    problem: 'running',
  };
}

describe('which node to bootstrap', () => {
  it('bootstraps the highest seqno and has the others join at their positions (IST)', () => {
    const d = decideRecovery([crashed('ctl1', 10), crashed('ctl2', 12), crashed('ctl3', 11)]);
    expect(d).toMatchObject({
      kind: 'bootstrap',
      chosen: 'ctl2',
      mostAdvanced: 'ctl2',
      bootstrapPosition: { uuid: U, seqno: 12 },
      warnings: [],
    });
    if (d.kind !== 'bootstrap') return;
    expect(d.reason).toContain('highest seqno (12)');
    expect(d.joiners).toEqual([
      { host: 'ctl1', startPosition: { uuid: U, seqno: 10 }, forceSst: false, note: 'IST: 2 behind' },
      { host: 'ctl3', startPosition: { uuid: U, seqno: 11 }, forceSst: false, note: 'IST: 1 behind' },
    ]);
  });

  it('breaks a tie with safe_to_bootstrap: 1 first', () => {
    const d = decideRecovery([crashed('ctl1', 15), crashed('ctl2', 15), crashed('ctl3', 15, U, true)]);
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl3' });
    if (d.kind === 'bootstrap') expect(d.reason).toContain('ctl3 has safe_to_bootstrap: 1');
  });

  it('breaks a tie by inventory order otherwise, and a lower seqno never wins', () => {
    const d = decideRecovery([crashed('ctl1', 14, U, true), crashed('ctl2', 15), crashed('ctl3', 15)]);
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl2' });
    if (d.kind === 'bootstrap') {
      expect(d.reason).toContain('ctl2 and ctl3 are all at seqno 15');
      expect(d.reason).toContain('ctl2 comes first in the inventory');
    }
  });

  it('refuses different cluster histories, naming them', () => {
    const d = decideRecovery([crashed('ctl1', 15), crashed('ctl2', 3, V), crashed('ctl3', 15)]);
    expect(d.kind).toBe('refuse');
    if (d.kind === 'refuse') {
      expect(d.reason).toContain('different cluster histories');
      expect(d.reason).toContain(`${U} on ctl1 (seqno 15), ctl3 (seqno 15)`);
      expect(d.reason).toContain(`${V} on ctl2 (seqno 3)`);
      expect(d.reason).toContain('--bootstrap-host');
    }
  });

  it('refuses when a position is unknown, pointing to --bootstrap-host', () => {
    const d = decideRecovery([crashed('ctl1', 15), crashed('ctl2', 12), lost('ctl3', 'no data')]);
    expect(d.kind).toBe('refuse');
    if (d.kind === 'refuse') {
      expect(d.reason).toContain('ctl3 (no data)');
      expect(d.reason).toContain('most advanced known node is ctl1 at seqno 15');
      expect(d.reason).toContain('--bootstrap-host ctl1');
    }
    expect(decideRecovery([lost('ctl1', 'a'), lost('ctl2', 'b')]).kind).toBe('refuse');
  });

  it('bootstraps an override with unknown positions elsewhere, warning of what is lost', () => {
    const d = decideRecovery([crashed('ctl1', 15), crashed('ctl2', 12), lost('ctl3', 'no data')], {
      bootstrapHost: 'ctl1',
    });
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl1', mostAdvanced: 'ctl1' });
    if (d.kind !== 'bootstrap') return;
    expect(d.warnings).toHaveLength(1);
    expect(d.warnings[0]).toMatch(/WARNING: the position of ctl3 \(no data\) is unknown/);
    expect(d.joiners.map((j) => [j.host, j.startPosition?.seqno, j.note])).toEqual([
      ['ctl2', 12, 'IST: 3 behind'],
      ['ctl3', undefined, 'SST: position unknown'],
    ]);
  });

  it('warns loudly when the override is behind the most advanced node, and rebuilds the nodes ahead', () => {
    const d = decideRecovery([crashed('ctl1', 15), crashed('ctl2', 12), crashed('ctl3', 14)], {
      bootstrapHost: 'ctl2',
    });
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl2', mostAdvanced: 'ctl1' });
    if (d.kind !== 'bootstrap') return;
    expect(d.warnings).toHaveLength(1);
    expect(d.warnings[0]).toContain('ctl2 is BEHIND the most advanced node ctl1 (seqno 12 < 15)');
    expect(d.warnings[0]).toContain('3 transaction(s)');
    expect(d.warnings[0]).toContain('LOST');
    expect(d.warnings[0]).toContain('ctl1 and ctl3 are rebuilt');
    expect(d.joiners.map((j) => [j.host, j.forceSst, j.startPosition])).toEqual([
      ['ctl1', true, undefined],
      ['ctl3', true, undefined],
    ]);
  });

  it('accepts an override that is as advanced as the best, without warning', () => {
    const d = decideRecovery([crashed('ctl1', 15, U, true), crashed('ctl2', 15), crashed('ctl3', 14)], {
      bootstrapHost: 'ctl2',
    });
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl2', warnings: [] });
    if (d.kind === 'bootstrap')
      expect(d.reason).toBe('--bootstrap-host ctl2 at seqno 15 (as advanced as ctl1)');
  });

  it('lets an override choose between histories, and warns that the other is rebuilt', () => {
    const d = decideRecovery([crashed('ctl1', 15), crashed('ctl2', 3, V)], { bootstrapHost: 'ctl2' });
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl2', bootstrapPosition: { uuid: V, seqno: 3 } });
    if (d.kind !== 'bootstrap') return;
    expect(d.warnings.join('\n')).toContain(`ctl1 (${U}:15) holds another cluster history`);
    expect(d.joiners).toEqual([
      { host: 'ctl1', startPosition: undefined, forceSst: false, note: 'SST: other history' },
    ]);
  });

  it('bootstraps an override of unknown position as a new history', () => {
    const d = decideRecovery([lost('ctl1', 'recover failed'), crashed('ctl2', 3)], { bootstrapHost: 'ctl1' });
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl1', bootstrapPosition: undefined });
    if (d.kind !== 'bootstrap') return;
    expect(d.warnings[0]).toContain('starts a NEW cluster history');
    expect(d.joiners[0]).toMatchObject({ host: 'ctl2', startPosition: undefined, note: 'SST: new history' });
  });

  it('refuses an override that has no data at all', () => {
    const empty = { ...lost('ctl1', 'no data (neither grastate.dat nor InnoDB files)'), hasData: false };
    const d = decideRecovery([empty, crashed('ctl2', 3)], { bootstrapHost: 'ctl1' });
    expect(d).toMatchObject({ kind: 'refuse' });
    if (d.kind === 'refuse')
      expect(d.reason).toContain('--bootstrap-host ctl1: it has no data to bootstrap from');
  });

  it('does not let a node without data block the recovery: it joins by SST', () => {
    const empty = { ...lost('ctl3', 'no data (neither grastate.dat nor InnoDB files)'), hasData: false };
    const d = decideRecovery([crashed('ctl1', 7), crashed('ctl2', 9), empty]);
    expect(d).toMatchObject({ kind: 'bootstrap', chosen: 'ctl2' });
    if (d.kind !== 'bootstrap') return;
    expect(d.joiners).toEqual([
      { host: 'ctl1', startPosition: { uuid: U, seqno: 7 }, forceSst: false, note: 'IST: 2 behind' },
      { host: 'ctl3', startPosition: undefined, forceSst: false, note: 'SST: no data' },
    ]);
    expect(d.warnings).toEqual([]);
  });

  it('refuses when no node has any data: nothing to recover', () => {
    const empty = (h: string) => ({ ...lost(h, 'no data'), hasData: false });
    const d = decideRecovery([empty('ctl1'), empty('ctl2'), empty('ctl3')]);
    expect(d.kind).toBe('refuse');
    if (d.kind === 'refuse') expect(d.reason).toContain('no Galera node has any data');
  });

  it('refuses an override that is not a Galera host', () => {
    const d = decideRecovery([crashed('ctl1', 1)], { bootstrapHost: 'ctl9' });
    expect(d).toEqual({ kind: 'refuse', reason: '--bootstrap-host ctl9 is not a Galera host (ctl1)' });
  });

  it('refuses while a node is running and Primary, naming it, even with an override', () => {
    for (const opts of [{}, { bootstrapHost: 'ctl3' }]) {
      const d = decideRecovery(
        [running('ctl1', 'Primary'), running('ctl2', 'Primary'), crashed('ctl3', 4)],
        opts,
      );
      expect(d.kind).toBe('refuse');
      if (d.kind === 'refuse') {
        expect(d.reason).toContain('ctl1 (Synced/Primary, cluster size 2) and ctl2 (Synced/Primary');
        expect(d.reason).toContain('are running and Primary');
        expect(d.reason).toContain('stackha deploy');
      }
    }
  });

  it('refuses while nodes run without a Primary component: they must be stopped first', () => {
    const d = decideRecovery([running('ctl1', 'non-Primary', 'Initialized'), running('ctl2', undefined, '')]);
    expect(d.kind).toBe('refuse');
    if (d.kind === 'refuse') {
      expect(d.reason).toContain('ctl1 (Initialized/non-Primary, cluster size 2)');
      expect(d.reason).toContain('running but not in a Primary component: stop them first');
    }
  });

  it('describes each node for the operator', () => {
    expect(formatFinding(crashed('ctl1', 7))).toBe(
      `ctl1: grastate.dat ${U}:-1 safe_to_bootstrap 0; position ${U}:7 from --wsrep-recover (0.1 s)`,
    );
    expect(
      formatFinding({
        ...crashed('ctl2', 42),
        grastate: gs(U, 42, true),
        source: 'grastate',
        recoverSeconds: undefined,
      }),
    ).toBe(`ctl2: grastate.dat ${U}:42 safe_to_bootstrap 1; position ${U}:42 from grastate.dat`);
    expect(formatFinding(lost('ctl3', 'no data'))).toBe('ctl3: no grastate.dat; position UNKNOWN: no data');
  });
});
