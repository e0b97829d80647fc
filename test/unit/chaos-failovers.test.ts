import { describe, expect, it } from 'vitest';
import {
  type FailoverCounters,
  countTakeovers,
  failoversBetween,
  formatFailovers,
} from '../../src/chaos/failovers.js';

const counters = (over: Partial<FailoverCounters> = {}): FailoverCounters => ({
  haproxyDowns: { 'ctl1: mariadb/ctl1': 0, 'ctl1: keystone_internal/ctl2': 1, 'ctl2: mariadb/ctl1': 0 },
  vipTakeovers: { ctl1: 1, ctl2: 0, ctl3: 0 },
  galeraConfIds: { ctl1: 3, ctl2: 3, ctl3: 3 },
  ...over,
});

describe('failovers recorded by the daemons', () => {
  it('counts nothing between equal readings', () => {
    const f = failoversBetween(counters(), counters());
    expect(f).toEqual({
      markedDown: [],
      haproxyMarkDowns: 0,
      vipTakeovers: 0,
      galeraViewChanges: 0,
      uncounted: [],
    });
    expect(formatFailovers(f)).toBe('0 HAProxy mark-downs, 0 VIP takeovers, 0 Galera view changes');
  });

  it('counts each mark-down per server, takeovers over hosts, and the largest Galera view step', () => {
    const f = failoversBetween(
      counters(),
      counters({
        haproxyDowns: { 'ctl1: mariadb/ctl1': 1, 'ctl1: keystone_internal/ctl2': 3, 'ctl2: mariadb/ctl1': 1 },
        vipTakeovers: { ctl1: 1, ctl2: 1, ctl3: 0 },
        // ctl1 died and came back: its id restarted low; the others saw two view changes (leave, join).
        galeraConfIds: { ctl1: 1, ctl2: 5, ctl3: 5 },
      }),
    );
    expect(f.markedDown).toEqual([
      'ctl1: mariadb/ctl1',
      'ctl1: keystone_internal/ctl2 x2',
      'ctl2: mariadb/ctl1',
    ]);
    expect(f.haproxyMarkDowns).toBe(4);
    expect(f.vipTakeovers).toBe(1);
    expect(f.galeraViewChanges).toBe(2);
    expect(f.uncounted).toEqual(['galera ctl1 (went from 3 to 1)']);
  });

  it('does not count a daemon that was down at either reading', () => {
    const f = failoversBetween(
      counters({ haproxyDowns: {} }),
      counters({ haproxyDowns: { 'ctl1: mariadb/ctl1': 5 }, vipTakeovers: { ctl2: 4 } }),
    );
    expect(f.haproxyMarkDowns).toBe(0);
    expect(f.vipTakeovers).toBe(4);
  });

  it("reads keepalived's MASTER entries from its log", () => {
    const log = [
      'Tue Dec  1 23:58:25 2026: (kolla_internal_vip_51) Entering BACKUP STATE',
      'Tue Dec  1 23:58:26 2026: (kolla_internal_vip_51) Entering MASTER STATE',
      'Tue Dec  1 23:59:01 2026: (kolla_internal_vip_51) Master received advert from 198.18.0.12 with higher priority',
      'Tue Dec  1 23:59:01 2026: (kolla_internal_vip_51) Entering BACKUP STATE',
      'Tue Dec  1 23:59:09 2026: (kolla_internal_vip_51) Entering MASTER STATE',
    ].join('\n');
    expect(countTakeovers(log)).toBe(2);
    expect(countTakeovers('')).toBe(0);
  });
});
