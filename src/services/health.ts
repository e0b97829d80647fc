import type { Host } from '../hosts/host.js';

/** Asks the service's health path on the host's own address from the host itself; true on HTTP 200. */
export async function apiHealthy(host: Host, port: number, path: string, timeoutMs = 2000): Promise<boolean> {
  const r = await host.exec(
    [
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-m',
      String(timeoutMs / 1000),
      `http://${host.address}:${port}${path}`,
    ],
    { timeoutMs: timeoutMs + 3000 },
  );
  return r.stdout.trim() === '200';
}
