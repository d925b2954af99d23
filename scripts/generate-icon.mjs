#!/usr/bin/env node
// Draws the app icon (resources/icon.svg and the 512×512 resources/icon.png electron-builder and the tray use) from
// one description: a rounded teal square with two interlocking rings, two devices paired. The PNG is rasterised
// here with signed distances (anti-aliased edges) and written with node:zlib, so no image library is needed.
// Run `node scripts/generate-icon.mjs` after changing the shapes; the outputs are committed.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const SIZE = 512;
const BACKGROUND = { x: 32, y: 32, size: 448, radius: 104, color: [0x0f, 0x5f, 0x57] };
const RING_RADIUS = 92;
const RING_WIDTH = 34;
const RINGS = [
  { cx: 204, cy: 256, color: [0xff, 0xff, 0xff] },
  { cx: 308, cy: 256, color: [0x9e, 0xf0, 0xc9] },
];

const hex = ([r, g, b]) => `#${[r, g, b].map((c) => c.toString(16).padStart(2, '0')).join('')}`;

export function iconSvg() {
  const b = BACKGROUND;
  const rings = RINGS.map(
    (r) => `  <circle cx="${r.cx}" cy="${r.cy}" r="${RING_RADIUS}" fill="none" stroke="${hex(r.color)}" stroke-width="${RING_WIDTH}"/>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}" viewBox="0 0 ${SIZE} ${SIZE}">`,
    '  <title>Palyra Desktop</title>',
    `  <rect x="${b.x}" y="${b.y}" width="${b.size}" height="${b.size}" rx="${b.radius}" fill="${hex(b.color)}"/>`,
    ...rings,
    '</svg>',
    '',
  ].join('\n');
}

/** Signed distance to a rounded square (negative inside). */
function roundedSquare(px, py) {
  const b = BACKGROUND;
  const half = b.size / 2;
  const qx = Math.abs(px - (b.x + half)) - (half - b.radius);
  const qy = Math.abs(py - (b.y + half)) - (half - b.radius);
  const outside = Math.hypot(Math.max(qx, 0), Math.max(qy, 0));
  return outside + Math.min(Math.max(qx, qy), 0) - b.radius;
}

/** Signed distance to a ring (circle stroke). */
function ring(px, py, r) {
  return Math.abs(Math.hypot(px - r.cx, py - r.cy) - RING_RADIUS) - RING_WIDTH / 2;
}

const coverage = (distance) => Math.min(1, Math.max(0, 0.5 - distance));

export function iconRgba() {
  const pixels = Buffer.alloc(SIZE * SIZE * 4);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const a = coverage(roundedSquare(px, py));
      let [r, g, b] = BACKGROUND.color;
      for (const shape of RINGS) {
        const c = coverage(ring(px, py, shape)) * a;
        r = r * (1 - c) + shape.color[0] * c;
        g = g * (1 - c) + shape.color[1] * c;
        b = b * (1 - c) + shape.color[2] * c;
      }
      const i = (y * SIZE + x) * 4;
      pixels[i] = Math.round(r);
      pixels[i + 1] = Math.round(g);
      pixels[i + 2] = Math.round(b);
      pixels[i + 3] = Math.round(a * 255);
    }
  }
  return pixels;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

export function encodePng(rgba, width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  const rows = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) rgba.copy(rows, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const resources = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'resources');
  writeFileSync(path.join(resources, 'icon.svg'), iconSvg());
  writeFileSync(path.join(resources, 'icon.png'), encodePng(iconRgba(), SIZE, SIZE));
  console.log('wrote resources/icon.svg and resources/icon.png');
}
