// "Did you mean ...?": the known key closest to a misspelt one.

/** Edit distance with adjacent transpositions (optimal string alignment), stopping early beyond `limit`. */
export function editDistance(a: string, b: string, limit = Number.POSITIVE_INFINITY): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
      best = Math.min(best, d);
    }
    if (best > limit) return limit + 1;
    prev2 = prev;
    prev = row;
  }
  return prev[b.length]!;
}

/** How far a misspelling may be from the key it stands for: 1 for short keys, up to 3 for long ones. */
export function typoLimit(key: string): number {
  return key.length <= 5 ? 1 : key.length < 14 ? 2 : 3;
}

/**
 * The candidate closest to `key` within typoLimit (earlier candidates win ties), or undefined. Case is ignored, so
 * `Enable_HAProxy` finds enable_haproxy.
 */
export function closest(key: string, candidates: Iterable<string>): string | undefined {
  const lower = key.toLowerCase();
  const limit = typoLimit(key);
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    if (candidate === key) continue;
    const d = editDistance(lower, candidate.toLowerCase(), bestDistance - 1);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}
