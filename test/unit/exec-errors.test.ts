// A failed command's message never repeats its stdin (where secrets are sent), whatever the program echoes.
import { describe, expect, it } from 'vitest';
import { CommandError, withoutInputEcho } from '../../src/util/exec.js';

const SQL =
  "SELECT COUNT(*) FROM mysql.user WHERE User='root' AND authentication_string=PASSWORD('s3cret-Pa55word');";

describe('CommandError', () => {
  it("drops the mariadb client's echo of the failing statement, keeps the error", () => {
    const stderr = `--------------\n${SQL}\n--------------\n\nERROR 1047 (08S01) at line 1: WSREP has not yet prepared node for application use`;
    const err = new CommandError(
      { argv: ['/usr/bin/mariadb', '-N'], code: 1, signal: null, stdout: '', stderr, timedOut: false },
      'ctl1',
      SQL,
    );
    expect(err.message).not.toContain('s3cret-Pa55word');
    expect(err.message).toContain('ERROR 1047 (08S01)');
    expect(err.message).toContain('ctl1: /usr/bin/mariadb -N exited 1');
  });

  it('without the input, the output is kept as it is', () => {
    expect(withoutInputEcho(`a\n${SQL}`, undefined)).toBe(`a\n${SQL}`);
    expect(withoutInputEcho(`a\n  ${SQL}  \nb`, `x\n${SQL}\n`)).toBe(
      'a\n<a line of its input, not shown>\nb',
    );
  });
});
