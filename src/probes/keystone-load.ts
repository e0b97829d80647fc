#!/usr/bin/env node
// Keystone probe and load generator, run inside the lab's client namespace. The request comes as JSON on stdin
// (passwords and tokens never in argv) and one JSON line comes out:
//   issue     {url, username, password, project}           -> {token, ms} or {error}
//   validate  {url, token}                                 -> {status, ms}
//   bench     {url, token, concurrency, seconds, warmupMs} -> throughput and latency of token validation
//             (GET /v3/auth/tokens with X-Auth-Token and X-Subject-Token), as a service's keystonemiddleware does;
//             with `path` (e.g. /v3, the version document), plain GETs of that path instead: the cost of the
//             load-balancing hop alone, without Keystone's own work
//   compare   {urls, token, concurrency, rounds, roundSeconds, warmupMs, path?} -> one bench result per URL,
//             measured in alternating rounds
// Usage: keystone-load MODE < request.json

export interface IssueRequest {
  readonly mode: 'issue';
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly project: string;
}
export interface ValidateRequest {
  readonly mode: 'validate';
  readonly url: string;
  readonly token: string;
}
export interface BenchRequest {
  readonly mode: 'bench';
  readonly url: string;
  readonly token: string;
  readonly concurrency: number;
  readonly seconds: number;
  readonly warmupMs: number;
  readonly path?: string;
}
export interface CompareRequest {
  readonly mode: 'compare';
  readonly urls: readonly string[];
  readonly token: string;
  readonly concurrency: number;
  readonly rounds: number;
  readonly roundSeconds: number;
  readonly warmupMs: number;
  readonly path?: string;
}
export type KeystoneProbeRequest = IssueRequest | ValidateRequest | BenchRequest | CompareRequest;

export interface IssueResult {
  readonly token?: string;
  readonly ms?: number;
  readonly error?: string;
}
export interface ValidateResult {
  readonly status: number;
  readonly ms: number;
  readonly error?: string;
}
export interface BenchResult {
  readonly url: string;
  /** What was requested: a token validation, or the plain path. */
  readonly what: string;
  readonly concurrency: number;
  readonly seconds: number;
  readonly requests: number;
  readonly failures: number;
  readonly rps: number;
  /** Latency of successful validations, ms. */
  readonly p50: number | undefined;
  readonly p90: number | undefined;
  readonly p99: number | undefined;
  readonly max: number | undefined;
  readonly errors: Readonly<Record<string, number>>;
}

function errorKind(err: unknown): string {
  const cause = (err as { cause?: { code?: string } })?.cause;
  if (cause?.code) return cause.code;
  return err instanceof Error ? ((err as { code?: string }).code ?? err.message) : String(err);
}

export async function issue(r: Omit<IssueRequest, 'mode'>): Promise<IssueResult> {
  const t = performance.now();
  try {
    const res = await fetch(`${r.url}/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: r.username, domain: { id: 'default' }, password: r.password } },
          },
          scope: { project: { name: r.project, domain: { id: 'default' } } },
        },
      }),
      signal: AbortSignal.timeout(15_000),
    });
    await res.arrayBuffer();
    const token = res.headers.get('x-subject-token');
    if (res.status !== 201 || !token) return { error: `http ${res.status}`, ms: performance.now() - t };
    return { token, ms: performance.now() - t };
  } catch (err) {
    return { error: errorKind(err), ms: performance.now() - t };
  }
}

export async function validate(url: string, token: string, path?: string): Promise<ValidateResult> {
  const t = performance.now();
  try {
    const res = await fetch(
      path === undefined ? `${url}/v3/auth/tokens` : `${url}${path}`,
      path === undefined
        ? {
            headers: { 'x-auth-token': token, 'x-subject-token': token },
            signal: AbortSignal.timeout(10_000),
          }
        : { signal: AbortSignal.timeout(10_000) },
    );
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - t };
  } catch (err) {
    return { status: 0, ms: performance.now() - t, error: errorKind(err) };
  }
}

function pct(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const v = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return v === undefined ? undefined : Math.round(v * 100) / 100;
}

/** Latencies and errors of one target, possibly gathered over several rounds. */
class Sample {
  readonly latencies: number[] = [];
  readonly errors: Record<string, number> = {};
  requests = 0;
  failures = 0;
  seconds = 0;

  /** `concurrency` closed loops for `seconds`, after a warm-up whose requests are not counted. */
  async run(
    r: { url: string; token: string; path?: string | undefined; concurrency: number },
    seconds: number,
    warmupMs: number,
  ): Promise<void> {
    const warmEnd = Date.now() + warmupMs;
    const end = warmEnd + seconds * 1000;
    const loop = async (): Promise<void> => {
      while (Date.now() < end) {
        const counted = Date.now() >= warmEnd;
        const v = await validate(r.url, r.token, r.path);
        if (!counted) continue;
        this.requests++;
        if (v.status === 200) this.latencies.push(v.ms);
        else {
          this.failures++;
          const kind = v.error ?? `http ${v.status}`;
          this.errors[kind] = (this.errors[kind] ?? 0) + 1;
        }
      }
    };
    await Promise.all(Array.from({ length: r.concurrency }, loop));
    this.seconds += seconds;
  }

  result(r: { url: string; path?: string | undefined; concurrency: number }): BenchResult {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      url: r.url,
      what: r.path === undefined ? 'token validation' : `GET ${r.path}`,
      concurrency: r.concurrency,
      seconds: this.seconds,
      requests: this.requests,
      failures: this.failures,
      rps: Math.round((sorted.length / Math.max(this.seconds, 1e-9)) * 10) / 10,
      p50: pct(sorted, 50),
      p90: pct(sorted, 90),
      p99: pct(sorted, 99),
      max: pct(sorted, 100),
      errors: this.errors,
    };
  }
}

/** `concurrency` closed loops validating one token (or GETting `path`) for `seconds`. */
export async function bench(r: Omit<BenchRequest, 'mode'>): Promise<BenchResult> {
  const sample = new Sample();
  await sample.run(r, r.seconds, r.warmupMs);
  return sample.result(r);
}

/**
 * Several targets measured in alternating rounds (A B, B A, A B, ...), so that a change in the machine's load
 * during the measurement hits every target alike. One result per target, over all its rounds.
 */
export async function compare(r: Omit<CompareRequest, 'mode'>): Promise<BenchResult[]> {
  const samples = r.urls.map(() => new Sample());
  for (let round = 0; round < r.rounds; round++) {
    const order = r.urls.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const url = r.urls[i] ?? '';
      await samples[i]?.run({ ...r, url }, r.roundSeconds, round === 0 ? r.warmupMs : 200);
    }
  }
  return r.urls.map((url, i) => (samples[i] ?? new Sample()).result({ ...r, url }));
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const req = JSON.parse(await readStdin()) as KeystoneProbeRequest;
  let out: unknown;
  if (req.mode === 'issue') out = await issue(req);
  else if (req.mode === 'validate') out = await validate(req.url, req.token);
  else if (req.mode === 'bench') out = await bench(req);
  else if (req.mode === 'compare') out = await compare(req);
  else throw new Error(`unknown mode ${(req as { mode: string }).mode}`);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// Run only as a script (the types above are imported by the controller).
if (process.argv[1]?.endsWith('keystone-load.js')) {
  main().catch((err: unknown) => {
    process.stderr.write(`keystone-load: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
