// The wire contract against design/REFERENCE.md §3 (field numbers of the reference daemon) and PROTOCOL.md §4 (our
// additive fields from 25 up). The table below is transcribed from those documents, not from the .proto.
import path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { NODE_RPC_PROTO_ROOT, NodeService } from '../../../main/rpc/node-service.js';

const D = 'palyra.common.v1.CanonicalId';
const R = 'palyra.common.v1.ReplayProtection';

const EXPECTED_FIELDS: Record<string, string[]> = {
  'palyra.common.v1.CanonicalId': ['string ulid = 1'],
  'palyra.common.v1.ReplayProtection': ['string nonce = 1', 'int64 timestamp_unix_ms = 2', 'string signature = 3'],
  'palyra.node.v1.PairingMethod': ['string pin_code = 1 (oneof value)', 'string qr_token = 2 (oneof value)'],
  'palyra.node.v1.BeginPairingSessionRequest': [
    'uint32 v = 1',
    'string client_kind = 2',
    'palyra.node.v1.PairingMethod method = 3',
    `${R} replay = 4`,
    'bytes device_x25519_commitment = 25',
  ],
  'palyra.node.v1.BeginPairingSessionResponse': [
    'uint32 v = 1',
    'string session_id = 2',
    'string client_kind = 3',
    'bytes gateway_ephemeral_public = 4',
    'bytes challenge = 5',
    'uint64 expires_at_unix_ms = 6',
    'string gateway_name = 25',
  ],
  'palyra.node.v1.CompletePairingSessionRequest': [
    'uint32 v = 1',
    'string session_id = 2',
    `${D} device_id = 3`,
    'string client_kind = 4',
    'string proof = 5',
    'bytes device_signing_public = 6',
    'bytes device_x25519_public = 7',
    'bytes challenge_signature = 8',
    'bytes transcript_mac = 9',
    'bytes tls_csr_der = 25',
    'bytes tls_csr_signature = 26',
    'string device_name = 27',
    'bytes pake_confirm_p = 28',
  ],
  'palyra.node.v1.CompletePairingSessionResponse': [
    'uint32 v = 1',
    'bool paired = 2',
    'string reason = 3',
    'string identity_fingerprint = 4',
    'string transcript_hash = 5',
    'string mtls_client_certificate_pem = 6',
    'string mtls_client_private_key_pem = 7',
    'string gateway_ca_certificate_pem = 8',
    'uint64 cert_expires_at_unix_ms = 9',
  ],
  'palyra.node.v1.GetPairingRequestStatusRequest': [
    'uint32 v = 1',
    'string session_id = 2',
    `${D} device_id = 3`,
    'uint32 wait_ms = 25',
  ],
  'palyra.node.v1.GetPairingRequestStatusResponse': [
    'uint32 v = 1',
    'string status = 2',
    'string reason = 3',
    'bool paired = 4',
    'string approval_id = 5',
    'string identity_fingerprint = 6',
    'string transcript_hash = 7',
    'string mtls_client_certificate_pem = 8',
    'string mtls_client_private_key_pem = 9',
    'string gateway_ca_certificate_pem = 10',
    'uint64 cert_expires_at_unix_ms = 11',
    'string sas = 25',
    'uint64 request_expires_at_unix_ms = 26',
  ],
  // Ours (PROTOCOL.md §4): a new message, numbered from 1.
  'palyra.node.v1.CancelPairingRequestRequest': ['uint32 v = 1', 'string session_id = 2', `${D} device_id = 3`, 'bytes cancel_signature = 4'],
  'palyra.node.v1.CancelPairingRequestResponse': ['uint32 v = 1', 'string status = 2', 'string reason = 3', 'bool changed = 4'],
  // PIN pairing v2 (PROTOCOL.md 5b): new messages, numbered from 1.
  'palyra.node.v1.BeginPinPairingSessionRequest': ['uint32 v = 1', 'string client_kind = 2', `${D} device_id = 3`, 'bytes device_x25519_commitment = 4'],
  'palyra.node.v1.BeginPinPairingSessionResponse': [
    'uint32 v = 1',
    'string session_id = 2',
    'string client_kind = 3',
    'bytes gateway_ephemeral_public = 4',
    'bytes challenge = 5',
    'uint64 expires_at_unix_ms = 6',
    'string gateway_name = 7',
    'string pake_suite = 8',
    'bytes pake_salt = 9',
  ],
  'palyra.node.v1.ExchangePinPakeRequest': ['uint32 v = 1', 'string session_id = 2', 'bytes pake_share_p = 3'],
  'palyra.node.v1.ExchangePinPakeResponse': ['uint32 v = 1', 'bytes pake_share_v = 2', 'bytes pake_confirm_v = 3'],
  'palyra.node.v1.RotateDeviceCertificateRequest': [
    'uint32 v = 1',
    `${D} device_id = 2`,
    `${R} replay = 3`,
    'bytes tls_csr_der = 25',
    'bytes tls_csr_signature = 26',
  ],
  'palyra.node.v1.RotateDeviceCertificateResponse': [
    'uint32 v = 1',
    'bool rotated = 2',
    'string reason = 3',
    'string mtls_client_certificate_pem = 4',
    'string mtls_client_private_key_pem = 5',
    'uint64 cert_expires_at_unix_ms = 6',
  ],
  'palyra.node.v1.RevokeDevicePairingRequest': ['uint32 v = 1', `${D} device_id = 2`, 'string reason = 3', `${R} replay = 4`],
  'palyra.node.v1.RevokeDevicePairingResponse': ['uint32 v = 1', 'bool revoked = 2', 'string reason = 3'],
  'palyra.node.v1.DeviceCapability': ['string name = 1', 'bool available = 2'],
  'palyra.node.v1.RegisterNodeRequest': [
    'uint32 v = 1',
    `${D} device_id = 2`,
    'string platform = 3',
    'repeated palyra.node.v1.DeviceCapability capabilities = 4',
    `${R} replay = 5`,
  ],
  'palyra.node.v1.RegisterNodeResponse': ['uint32 v = 1', `${D} device_id = 2`, 'bool accepted = 3', 'string reason = 4'],
  'palyra.node.v1.NodeEventRequest': [
    'uint32 v = 1',
    `${D} device_id = 2`,
    'string event_name = 3',
    'bytes payload_json = 4',
    `${R} replay = 5`,
    'bool push_dispatch = 25',
  ],
  'palyra.node.v1.NodeEventResponse': [
    'uint32 v = 1',
    `${D} event_id = 2`,
    'bool accepted = 3',
    'string reason = 4',
    'palyra.node.v1.NodeCapabilityDispatch dispatch = 13',
    'bool push_dispatch = 25',
  ],
  'palyra.node.v1.NodeCapabilityDispatch': [
    `${D} request_id = 1`,
    'string capability = 2',
    'bytes input_json = 3',
    'uint64 max_payload_bytes = 4',
  ],
  'palyra.node.v1.ExecuteCapabilityRequest': [
    'uint32 v = 1',
    `${D} device_id = 2`,
    'string capability = 3',
    'bytes input_json = 4',
    'uint64 max_payload_bytes = 5',
  ],
  'palyra.node.v1.ExecuteCapabilityResponse': ['uint32 v = 1', 'bool success = 2', 'bytes output_json = 3', 'string error = 4'],
};

const EXPECTED_METHODS = [
  ['BeginPairingSession', 'BeginPairingSessionRequest', 'BeginPairingSessionResponse', 'unary'],
  ['CompletePairingSession', 'CompletePairingSessionRequest', 'CompletePairingSessionResponse', 'unary'],
  ['GetPairingRequestStatus', 'GetPairingRequestStatusRequest', 'GetPairingRequestStatusResponse', 'unary'],
  ['RotateDeviceCertificate', 'RotateDeviceCertificateRequest', 'RotateDeviceCertificateResponse', 'unary'],
  ['RevokeDevicePairing', 'RevokeDevicePairingRequest', 'RevokeDevicePairingResponse', 'unary'],
  ['RegisterNode', 'RegisterNodeRequest', 'RegisterNodeResponse', 'unary'],
  ['StreamNodeEvents', 'NodeEventRequest', 'NodeEventResponse', 'bidi'],
  ['ExecuteCapability', 'ExecuteCapabilityRequest', 'ExecuteCapabilityResponse', 'unary'],
  // Ours: the device withdraws its pairing request.
  ['CancelPairingRequest', 'CancelPairingRequestRequest', 'CancelPairingRequestResponse', 'unary'],
  // Ours: PIN pairing v2 (SPAKE2+).
  ['BeginPinPairingSession', 'BeginPinPairingSessionRequest', 'BeginPinPairingSessionResponse', 'unary'],
  ['ExchangePinPake', 'ExchangePinPakeRequest', 'ExchangePinPakeResponse', 'unary'],
] as const;

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports in node.proto are relative to the proto root, as for protoc -I.
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(NODE_RPC_PROTO_ROOT, target));
  root.loadSync('palyra/node/v1/node.proto', { keepCase: true });
  root.resolveAll();
  return root;
}

function describeField(field: protobuf.Field): string {
  const type = field.resolvedType === null ? field.type : field.resolvedType.fullName.replace(/^\./, '');
  const oneof = field.partOf === null ? '' : ` (oneof ${field.partOf.name})`;
  return `${field.repeated ? 'repeated ' : ''}${type} ${field.name} = ${field.id}${oneof}`;
}

interface WireField {
  field: number;
  wireType: number;
}

/** The (field number, wire type) of each top-level field on the wire, in order. */
function wireTags(bytes: Uint8Array): WireField[] {
  const reader = protobuf.Reader.create(bytes);
  const tags: WireField[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    tags.push({ field: tag >>> 3, wireType: tag & 7 });
    reader.skipType(tag & 7);
  }
  return tags;
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;

describe('palyra.node.v1 wire contract', () => {
  const root = loadRoot();

  it('declares every message with exactly the reference field names, types and numbers plus our additions', () => {
    const actual: Record<string, string[]> = {};
    for (const fullName of Object.keys(EXPECTED_FIELDS)) {
      actual[fullName] = root.lookupType(fullName).fieldsArray.map(describeField).sort();
    }
    const expected = Object.fromEntries(Object.entries(EXPECTED_FIELDS).map(([name, fields]) => [name, [...fields].sort()]));
    expect(actual).toEqual(expected);
  });

  it('declares no message beyond the contract', () => {
    const names: string[] = [];
    const walk = (ns: protobuf.NamespaceBase): void => {
      for (const nested of ns.nestedArray) {
        if (nested instanceof protobuf.Type) names.push(nested.fullName.replace(/^\./, ''));
        if (nested instanceof protobuf.Namespace) walk(nested);
      }
    };
    walk(root.lookup('palyra') as protobuf.Namespace);
    expect(names.sort()).toEqual(Object.keys(EXPECTED_FIELDS).sort());
  });

  it('numbers nothing above the reference range except the PROTOCOL §4 additions, all from 25 up', () => {
    const outsideReference: string[] = [];
    for (const fullName of Object.keys(EXPECTED_FIELDS)) {
      for (const field of root.lookupType(fullName).fieldsArray) {
        if (field.id > 13) outsideReference.push(`${fullName.replace(/^palyra\.node\.v1\./, '')}.${field.name} = ${field.id}`);
      }
    }
    expect(outsideReference.sort()).toEqual(
      [
        'BeginPairingSessionRequest.device_x25519_commitment = 25',
        'BeginPairingSessionResponse.gateway_name = 25',
        'CompletePairingSessionRequest.tls_csr_der = 25',
        'CompletePairingSessionRequest.tls_csr_signature = 26',
        'CompletePairingSessionRequest.device_name = 27',
        'CompletePairingSessionRequest.pake_confirm_p = 28',
        'GetPairingRequestStatusRequest.wait_ms = 25',
        'GetPairingRequestStatusResponse.sas = 25',
        'GetPairingRequestStatusResponse.request_expires_at_unix_ms = 26',
        'RotateDeviceCertificateRequest.tls_csr_der = 25',
        'RotateDeviceCertificateRequest.tls_csr_signature = 26',
        'NodeEventRequest.push_dispatch = 25',
        'NodeEventResponse.push_dispatch = 25',
      ].sort(),
    );
  });

  it('keeps the reference reservations so those numbers can never be reused', () => {
    expect(root.lookupType('palyra.common.v1.CanonicalId').reserved).toEqual([[2, 2], [3, 3]]);
    expect(root.lookupType('palyra.common.v1.ReplayProtection').reserved).toEqual([[4, 4], [5, 5]]);
    expect(root.lookupType('palyra.node.v1.NodeEventResponse').reserved).toEqual([[5, 12]]);
  });

  it('serves the eight reference RPCs of palyra.node.v1.NodeService (and our CancelPairingRequest) with the reference paths and streaming shapes', () => {
    expect(Object.keys(NodeService).sort()).toEqual(EXPECTED_METHODS.map(([name]) => name).sort());
    const declared = root.lookupService('palyra.node.v1.NodeService');
    for (const [name, request, response, shape] of EXPECTED_METHODS) {
      const method = NodeService[name];
      expect(method.path).toBe(`/palyra.node.v1.NodeService/${name}`);
      expect(method.requestStream).toBe(shape === 'bidi');
      expect(method.responseStream).toBe(shape === 'bidi');
      expect(declared.methods[name]?.resolvedRequestType?.fullName).toBe(`.palyra.node.v1.${request}`);
      expect(declared.methods[name]?.resolvedResponseType?.fullName).toBe(`.palyra.node.v1.${response}`);
    }
  });

  it('puts the CSR of a CompletePairingSession on the wire at tags 25 and 26 after the reference fields', () => {
    const bytes = NodeService.CompletePairingSession.requestSerialize({
      v: 1,
      session_id: '01J00000000000000000000000',
      device_id: { ulid: '01ARZ3NDEKTSV4RRFFQ69G5FAV' },
      transcript_mac: Buffer.alloc(32, 7),
      tls_csr_der: Buffer.from([0x30, 0x82]),
      tls_csr_signature: Buffer.alloc(64, 1),
    });
    expect(wireTags(bytes)).toEqual([
      { field: 1, wireType: VARINT },
      { field: 2, wireType: LENGTH_DELIMITED },
      { field: 3, wireType: LENGTH_DELIMITED },
      { field: 9, wireType: LENGTH_DELIMITED },
      { field: 25, wireType: LENGTH_DELIMITED },
      { field: 26, wireType: LENGTH_DELIMITED },
    ]);
    // Tag 25, wire type 2 is the two-byte varint 0xca 0x01.
    expect(Buffer.from(bytes).includes(Buffer.from([0xca, 0x01, 2, 0x30, 0x82]))).toBe(true);
  });

  it('puts the long-poll wait_ms of GetPairingRequestStatus at tag 25 as a varint', () => {
    const bytes = NodeService.GetPairingRequestStatus.requestSerialize({ v: 1, session_id: 's', wait_ms: 30_000 });
    expect(wireTags(bytes)).toEqual([
      { field: 1, wireType: VARINT },
      { field: 2, wireType: LENGTH_DELIMITED },
      { field: 25, wireType: VARINT },
    ]);
    expect(NodeService.GetPairingRequestStatus.requestDeserialize(bytes).wait_ms).toBe(30_000);
  });

  it('puts a capability dispatch of NodeEventResponse at tag 13 with its request id at tag 1 inside', () => {
    const bytes = NodeService.StreamNodeEvents.responseSerialize({
      v: 1,
      accepted: true,
      dispatch: { request_id: { ulid: '01ARZ3NDEKTSV4RRFFQ69G5FAV' }, capability: 'echo', max_payload_bytes: 65_536 },
    });
    expect(wireTags(bytes)).toEqual([
      { field: 1, wireType: VARINT },
      { field: 3, wireType: VARINT },
      { field: 13, wireType: LENGTH_DELIMITED },
    ]);
    const decoded = root.lookupType('palyra.node.v1.NodeEventResponse').decode(bytes);
    const dispatch = (decoded as unknown as { dispatch: protobuf.Message }).dispatch;
    const inner = root.lookupType('palyra.node.v1.NodeCapabilityDispatch').encode(dispatch).finish();
    expect(wireTags(inner)).toEqual([
      { field: 1, wireType: LENGTH_DELIMITED },
      { field: 2, wireType: LENGTH_DELIMITED },
      { field: 4, wireType: VARINT },
    ]);
  });

  it('encodes with protobufjs from the .proto exactly as the grpc service definition does', () => {
    const message = {
      v: 1,
      client_kind: 'node',
      method: { qr_token: '0123456789ABCDEF' },
      replay: { nonce: 'n', timestamp_unix_ms: 1_700_000_000_000, signature: 'sig' },
      device_x25519_commitment: Buffer.alloc(32, 9),
    };
    const type = root.lookupType('palyra.node.v1.BeginPairingSessionRequest');
    const fromProtobufjs = type.encode(type.fromObject(message)).finish();
    const fromService = NodeService.BeginPairingSession.requestSerialize(message);
    expect(Buffer.from(fromProtobufjs).equals(fromService)).toBe(true);
    expect(wireTags(fromService).map((t) => t.field)).toEqual([1, 2, 3, 4, 25]);
  });

  it('lets a reference peer that knows no field above 24 decode our messages and skip the additions', () => {
    const bytes = NodeService.BeginPairingSession.responseSerialize({
      v: 1,
      session_id: '01J00000000000000000000000',
      expires_at_unix_ms: 1_700_000_300_000,
      gateway_name: 'Office gateway',
    });
    // A reference build of the message: the same fields minus gateway_name.
    const referenceRoot = protobuf.parse(
      'syntax = "proto3"; package ref; message BeginPairingSessionResponse { uint32 v = 1; string session_id = 2; ' +
        'string client_kind = 3; bytes gateway_ephemeral_public = 4; bytes challenge = 5; uint64 expires_at_unix_ms = 6; }',
      { keepCase: true },
    ).root;
    const referenceType = referenceRoot.lookupType('ref.BeginPairingSessionResponse');
    const decoded = referenceType.toObject(referenceType.decode(bytes), { longs: Number });
    expect(decoded).toEqual({ v: 1, session_id: '01J00000000000000000000000', expires_at_unix_ms: 1_700_000_300_000 });
  });

  it('decodes uint64 timestamps as plain numbers, as the generated types promise', () => {
    const bytes = NodeService.CompletePairingSession.responseSerialize({ v: 1, cert_expires_at_unix_ms: 1_700_000_086_400 });
    const decoded = NodeService.CompletePairingSession.responseDeserialize(bytes);
    expect(decoded.cert_expires_at_unix_ms).toBe(1_700_000_086_400);
    expect(decoded.paired).toBe(false);
    expect(decoded.mtls_client_private_key_pem).toBe('');
  });
});
