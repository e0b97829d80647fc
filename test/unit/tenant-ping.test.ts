import { describe, expect, it } from 'vitest';
import { bridgeName, ensureResource, parsePing, tapName } from '../../src/lab/tenant.js';

const line = (t: number, seq: number, reply: boolean) =>
  reply
    ? `[${(t / 1000).toFixed(6)}] 64 bytes from 198.19.13.1: icmp_seq=${seq} ttl=63 time=0.412 ms`
    : `[${(t / 1000).toFixed(6)}] no answer yet for icmp_seq=${seq}`;

describe('the tenant ping probe', () => {
  // 10 pings 50 ms apart; 4 to 7 unanswered (the router's primary died at t0 + 170 ms).
  const t0 = 1_733_238_000_000;
  const out = [
    'PING 198.19.13.1 (198.19.13.1) 56(84) bytes of data.',
    ...[1, 2, 3].map((s) => line(t0 + s * 50, s, true)),
    ...[4, 5, 6, 7].map((s) => line(t0 + s * 50 + 50, s, false)),
    ...[8, 9, 10].map((s) => line(t0 + s * 50, s, true)),
    '--- 198.19.13.1 ping statistics ---',
  ].join('\n');

  it('counts sends, replies and losses, and finds the longest gap between replies', () => {
    const r = parsePing(out, '198.19.13.1');
    expect(r.sent).toBe(10);
    expect(r.replies).toBe(6);
    expect(r.lost).toBe(4);
    expect(r.longestGapMs).toBe(250);
    expect(r.longestGapFrom).toBe(t0 + 150);
    expect(r.faultGapMs).toBeUndefined();
  });

  it('measures the outage around the fault: last reply before it to the first after', () => {
    const r = parsePing(out, '198.19.13.1', t0 + 170);
    expect(r.faultGapMs).toBe(250);
    expect(r.firstReplyAfterFaultMs).toBe(230);
  });

  it('no reply after the fault: no outage figure (the tenant never came back)', () => {
    const r = parsePing(out, '198.19.13.1', t0 + 600);
    expect(r.faultGapMs).toBeUndefined();
    expect(r.firstReplyAfterFaultMs).toBeUndefined();
  });

  it("names devices as Neutron's Linux bridge driver does", () => {
    expect(tapName('0b6c2f6e-1a2b-4c3d-9e8f-001122334455')).toBe('tap0b6c2f6e-1a');
    expect(bridgeName('7d1e0c55-aaaa-bbbb-cccc-001122334455')).toBe('brq7d1e0c55-aa');
  });
});

describe('a lab Neutron resource made if missing', () => {
  it('is not made again when found', async () => {
    let made = 0;
    const id = await ensureResource(
      'router r',
      async () => 'r1',
      async () => {
        made++;
      },
    );
    expect(id).toBe('r1');
    expect(made).toBe(0);
  });

  it('counts a failed create as done when the server finished it after the client gave up', async () => {
    let looks = 0;
    const id = await ensureResource(
      'router r',
      async () => (++looks >= 3 ? 'r1' : undefined),
      async () => {
        throw new Error('504 Gateway Time-out');
      },
      { timeoutMs: 2000, intervalMs: 10 },
    );
    expect(id).toBe('r1');
  });

  it('fails with the create error when the resource never appears', async () => {
    await expect(
      ensureResource(
        'router r',
        async () => undefined,
        async () => {
          throw new Error('504 Gateway Time-out');
        },
        { timeoutMs: 100, intervalMs: 10 },
      ),
    ).rejects.toThrow(/504 Gateway Time-out \(and router r never appeared\)/);
  });
});
