import { describe, expect, it } from 'vitest';
import { renderBigDigits, renderQr } from '../../../main/cli/qr-terminal.js';

describe('terminal rendering', () => {
  it('draws a 6-digit PIN five rows high, split 3 + 3', () => {
    const rows = renderBigDigits('123456').split('\n');
    expect(rows).toHaveLength(5);
    // 6 digits of 3 pixels × 2 characters, 4 gaps of 2 and one middle gap of 6.
    expect(Math.max(...rows.map((r) => r.length))).toBe(6 * 6 + 4 * 2 + 6);
    expect(rows[0]).toMatch(/^ {2}██/); // "1" starts with an unlit pixel
  });

  it('draws different digits differently', () => {
    const glyphs = new Set(Array.from('0123456789', (d) => renderBigDigits(d)));
    expect(glyphs.size).toBe(10);
  });

  it('renders a QR without escape sequences for pipes and with a forced background for terminals', async () => {
    const plain = await renderQr('palyra://pair?v=1', { tty: false });
    expect(plain).not.toContain('\u001b[');
    expect(plain).toMatch(/[█▀▄]/);
    expect(plain.split('\n').length).toBeGreaterThan(10);
    const tty = await renderQr('palyra://pair?v=1', { tty: true });
    expect(tty).toContain('\u001b[47m');
  });
});
