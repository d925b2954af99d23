/**
 * Pairing codes drawn for a terminal: the QR of a pairing URI (qrcode's terminal renderers) and a PIN in large
 * digits, readable from across a desk.
 */

import QRCode from 'qrcode';

/**
 * On an interactive terminal the `terminal` renderer paints black on an explicit white background, which scans on
 * dark themes too; into a pipe or file go plain `utf8` block characters without escape sequences.
 */
export async function renderQr(text: string, options: { tty: boolean }): Promise<string> {
  const rendered = options.tty
    ? await QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' })
    : await QRCode.toString(text, { type: 'utf8', errorCorrectionLevel: 'M', margin: 2 });
  return rendered.replace(/\n+$/, '');
}

/** A 3×5 pixel font for the digits 0–9: each string is one row, `#` a lit pixel. */
const DIGIT_FONT: Readonly<Record<string, readonly string[]>> = {
  '0': ['###', '# #', '# #', '# #', '###'],
  '1': [' # ', '## ', ' # ', ' # ', '###'],
  '2': ['###', '  #', '###', '#  ', '###'],
  '3': ['###', '  #', '###', '  #', '###'],
  '4': ['# #', '# #', '###', '  #', '  #'],
  '5': ['###', '#  ', '###', '  #', '###'],
  '6': ['###', '#  ', '###', '# #', '###'],
  '7': ['###', '  #', '  #', '  #', '  #'],
  '8': ['###', '# #', '###', '# #', '###'],
  '9': ['###', '# #', '###', '  #', '###'],
};
const FONT_ROWS = 5;
/** Pixels are drawn two characters wide so the digits keep their shape in a terminal's tall cells. */
const PIXEL_ON = '██';
const PIXEL_OFF = '  ';

/**
 * Large digits, five rows high. A 6-digit PIN is split 3 + 3 (as people read it out); other characters are not
 * drawn (the caller prints the PIN as text beside it as well).
 */
export function renderBigDigits(digits: string): string {
  const glyphs = Array.from(digits, (d) => DIGIT_FONT[d]).filter((g): g is readonly string[] => g !== undefined);
  const rows: string[] = [];
  for (let row = 0; row < FONT_ROWS; row++) {
    let line = '';
    glyphs.forEach((glyph, index) => {
      if (index > 0) line += glyphs.length === 6 && index === 3 ? '      ' : '  ';
      for (const pixel of glyph[row] ?? '') line += pixel === '#' ? PIXEL_ON : PIXEL_OFF;
    });
    rows.push(line.trimEnd());
  }
  return rows.join('\n');
}
