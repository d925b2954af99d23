// Local ESLint rule: the import boundaries of ARCHITECTURE.md. Each source folder is a layer with an allow-list of
// layers and packages it may import; anything else is reported. Tested in test/lint/boundaries.test.ts.
import path from 'node:path';

/** Layers in match order (most specific first); `dir` is relative to the repository root. */
export const LAYERS = [
  { name: 'core', dir: 'main/core' },
  { name: 'store', dir: 'main/store' },
  { name: 'rpc', dir: 'main/rpc' },
  { name: 'gateway', dir: 'main/gateway' },
  { name: 'device', dir: 'main/device' },
  { name: 'platform', dir: 'main/platform' },
  { name: 'admin', dir: 'main/admin' },
  { name: 'cli', dir: 'main/cli' },
  { name: 'ipc', dir: 'main/ipc' },
  { name: 'app', dir: 'main/app' },
  { name: 'preload', dir: 'preload' },
  { name: 'renderer', dir: 'renderer' },
];

const NODE_BUILTIN = /^node:/;

/** What each layer may import: other layers, packages (exact name or prefix ending in '/'), and type-only layers. */
export const RULES = {
  core: { layers: ['core'], packages: ['@noble/', '@scure/base', '@peculiar/x509', 'reflect-metadata'] },
  store: {
    layers: ['core', 'store'],
    packages: ['node:fs', 'node:fs/promises', 'node:path', 'node:crypto', 'node:async_hooks', 'keytar', 'zod', 'pg'],
  },
  rpc: {
    layers: ['core', 'rpc'],
    packages: ['@grpc/grpc-js', '@grpc/proto-loader', 'node:tls', 'node:net', 'node:path', 'node:url', 'node:fs'],
  },
  gateway: { layers: ['core', 'store', 'rpc', 'gateway'], packages: [NODE_BUILTIN, '@grpc/grpc-js', 'zod', 'multicast-dns'] },
  device: { layers: ['core', 'store', 'rpc', 'device'], packages: [NODE_BUILTIN, '@grpc/grpc-js', 'zod'] },
  // Host facts both front ends share: data directories, the keychain choice, the operator's name, the address a
  // hosted gateway advertises.
  platform: { layers: ['core', 'store', 'platform'], packages: [NODE_BUILTIN] },
  // One admin interface (AdminTarget) over the local state and the remote GatewayAdmin service.
  admin: { layers: ['core', 'store', 'rpc', 'gateway', 'device', 'platform', 'admin'], packages: [NODE_BUILTIN, '@grpc/grpc-js'] },
  cli: { layers: ['core', 'store', 'rpc', 'gateway', 'device', 'platform', 'admin', 'cli'], packages: [NODE_BUILTIN, 'qrcode'] },
  ipc: { layers: ['ipc'], typeOnlyLayers: ['core'], packages: ['zod'] },
  app: {
    // Never 'cli': the app and the CLI are two front ends over the same layers.
    layers: ['core', 'store', 'rpc', 'gateway', 'device', 'platform', 'admin', 'ipc', 'app'],
    packages: [NODE_BUILTIN, 'electron', 'ws', 'qrcode', 'zod'],
  },
  preload: { layers: ['ipc', 'preload'], packages: ['electron'] },
  renderer: { layers: ['ipc', 'renderer'], typeOnlyLayers: ['core'], packages: ['svelte', 'svelte/', 'jsqr', 'qrcode', 'zxing-wasm', 'zxing-wasm/'] },
};

function layerOf(relativePath) {
  const p = relativePath.split(path.sep).join('/');
  return LAYERS.find((l) => p === l.dir || p.startsWith(`${l.dir}/`))?.name;
}

function packageAllowed(source, allowed) {
  return allowed.some((a) => (a instanceof RegExp ? a.test(source) : a.endsWith('/') ? source.startsWith(a) : source === a || source.startsWith(`${a}/`)));
}

export const boundariesRule = {
  meta: {
    type: 'problem',
    docs: { description: 'Enforce the layer import boundaries of ARCHITECTURE.md' },
    schema: [],
    messages: {
      layer: "'{{from}}' may not import from '{{to}}' ({{source}}); see ARCHITECTURE.md 'Boundaries'.",
      typeOnly: "'{{from}}' may import only types from '{{to}}' ({{source}}); use 'import type'.",
      package: "'{{from}}' may not import the package '{{source}}'; see ARCHITECTURE.md 'Boundaries'.",
    },
  },
  create(context) {
    const root = context.cwd;
    const filename = context.filename;
    const from = layerOf(path.relative(root, filename));
    if (from === undefined) return {};
    const rule = RULES[from];

    function check(node, source, typeOnly) {
      if (typeof source !== 'string') return;
      if (source.startsWith('.') || source.startsWith('/')) {
        const target = path.relative(root, path.resolve(path.dirname(filename), source));
        const to = layerOf(target);
        if (to === undefined) {
          context.report({ node, messageId: 'layer', data: { from, to: target, source } });
        } else if (!rule.layers.includes(to)) {
          if (typeOnly && rule.typeOnlyLayers?.includes(to)) return;
          const messageId = rule.typeOnlyLayers?.includes(to) ? 'typeOnly' : 'layer';
          context.report({ node, messageId, data: { from, to, source } });
        }
        return;
      }
      if (!packageAllowed(source, rule.packages)) context.report({ node, messageId: 'package', data: { from, source } });
    }

    return {
      ImportDeclaration(node) {
        check(node, node.source.value, node.importKind === 'type' || node.specifiers.length > 0 && node.specifiers.every((s) => s.importKind === 'type'));
      },
      ExportNamedDeclaration(node) {
        if (node.source) check(node, node.source.value, node.exportKind === 'type');
      },
      ExportAllDeclaration(node) {
        check(node, node.source.value, node.exportKind === 'type');
      },
      ImportExpression(node) {
        if (node.source.type === 'Literal') check(node, node.source.value, false);
      },
      CallExpression(node) {
        if (node.callee.type === 'Identifier' && node.callee.name === 'require' && node.arguments[0]?.type === 'Literal') {
          check(node, node.arguments[0].value, false);
        }
      },
    };
  },
};

export default { rules: { boundaries: boundariesRule } };
