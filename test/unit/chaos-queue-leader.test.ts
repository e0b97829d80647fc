// The RabbitMQ scenarios kill the node leading the chaos queue; the leader is read from rabbitmqctl's table output,
// which names the node of a classic queue's master pid (the JSON formatter does not).
import { describe, expect, it } from 'vitest';
import { queueLeaderIn } from '../../src/chaos/scenarios.js';

// As RabbitMQ 3.10 prints `list_queues -q --no-table-headers name type leader pid` (a classic queue has no leader).
const TABLE = [
  'stackha-chaos-quorum\tquorum\trabbit@ctl2\t<rabbit@ctl2.1796194342.1973.0>',
  'conductor_fanout_42fe\tclassic\t\t<rabbit@ctl1.1796194342.1871.0>',
  'stackha-chaos-mirrored\tclassic\t\t<rabbit@ctl3.1796194342.2020.0>',
  'lab-ctl-1-queue\tclassic\t\t<rabbit@lab-ctl-1.1.2.0>',
].join('\n');

describe('the chaos queue leader', () => {
  it("is a quorum queue's leader", () => {
    expect(queueLeaderIn(TABLE, 'stackha-chaos-quorum')).toBe('ctl2');
  });
  it("is the node of a mirrored queue's master pid", () => {
    expect(queueLeaderIn(TABLE, 'stackha-chaos-mirrored')).toBe('ctl3');
    expect(queueLeaderIn(TABLE, 'lab-ctl-1-queue')).toBe('lab-ctl-1');
  });
  it('is unknown for a queue that is not listed, or a pid without a node', () => {
    expect(queueLeaderIn(TABLE, 'stackha-chaos')).toBeUndefined();
    expect(
      queueLeaderIn('stackha-chaos-mirrored\tclassic\t\t#PID<11017.2020.0>', 'stackha-chaos-mirrored'),
    ).toBe(undefined);
  });
});
