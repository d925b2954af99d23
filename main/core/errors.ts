/**
 * The one error catalogue. Every failure the product reports carries a stable snake_case `code` from this table;
 * the same code appears in CLI output (`error[CODE]: message`), JSON, logs, IPC and the UI. Messages may improve,
 * codes never change meaning. `grpc` is the status a gateway RPC answers with when this error crosses the wire.
 *
 * Where the reference daemon has an error kind with a Display string that operators and tests grep for, the
 * `message` here keeps that text (REFERENCE.md §2.10).
 */

export type GrpcStatusName =
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'NOT_FOUND'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED'
  | 'DEADLINE_EXCEEDED'
  | 'UNAVAILABLE'
  | 'ALREADY_EXISTS'
  | 'CANCELLED'
  | 'INTERNAL';

interface CatalogueEntry {
  /** Default human message; call sites may give a more specific one. */
  readonly message: string;
  readonly grpc: GrpcStatusName;
}

function entry(grpc: GrpcStatusName, message: string): CatalogueEntry {
  return { grpc, message };
}

export const ERROR_CATALOGUE = {
  // --- generic ---------------------------------------------------------------------------------------------
  invalid_argument: entry('INVALID_ARGUMENT', 'invalid argument'),
  usage: entry('INVALID_ARGUMENT', 'invalid command line'),
  not_found: entry('NOT_FOUND', 'not found'),
  internal: entry('INTERNAL', 'internal error'),
  cryptographic: entry('INTERNAL', 'cryptographic operation failed'),
  cancelled: entry('CANCELLED', 'operation cancelled'),
  unauthenticated: entry('UNAUTHENTICATED', 'authentication required'),
  permission_denied: entry('PERMISSION_DENIED', 'permission denied'),
  unavailable: entry('UNAVAILABLE', 'service unavailable'),
  timeout: entry('DEADLINE_EXCEEDED', 'operation timed out'),
  browser_link_used: entry('PERMISSION_DENIED', 'this browser-mode link was already used'),

  // --- identifiers and identities ---------------------------------------------------------------------------
  invalid_canonical_id: entry('INVALID_ARGUMENT', 'invalid canonical device ID'),
  device_id_mismatch: entry('PERMISSION_DENIED', 'device_id is not derived from the device signing key'),
  invalid_public_key: entry('INVALID_ARGUMENT', 'invalid public key'),
  invalid_key_material: entry('INVALID_ARGUMENT', 'invalid key material'),

  // --- handshake (reference IdentityError kinds) ---------------------------------------------------------------
  invalid_pairing_proof: entry('FAILED_PRECONDITION', 'invalid pairing proof'),
  pairing_session_not_found: entry('FAILED_PRECONDITION', 'pairing session not found'),
  pairing_session_expired: entry('FAILED_PRECONDITION', 'pairing session expired'),
  pairing_session_capacity_exceeded: entry('RESOURCE_EXHAUSTED', 'active pairing session capacity exceeded'),
  pairing_session_rate_limited: entry('RESOURCE_EXHAUSTED', 'pairing session start rate limit exceeded'),
  pairing_version_mismatch: entry('FAILED_PRECONDITION', 'pairing protocol version mismatch'),
  pairing_client_kind_mismatch: entry('FAILED_PRECONDITION', 'pairing client kind mismatch'),
  signature_verification_failed: entry('FAILED_PRECONDITION', 'signature verification failed'),
  transcript_verification_failed: entry('FAILED_PRECONDITION', 'transcript verification failed'),
  weak_key_exchange: entry('FAILED_PRECONDITION', 'X25519 key exchange produced an all-zero shared secret'),

  // --- devices, certificates, revocation ---------------------------------------------------------------------
  device_revoked: entry('PERMISSION_DENIED', 'device is revoked'),
  device_not_paired: entry('FAILED_PRECONDITION', 'device is not paired'),
  certificate_revoked: entry('PERMISSION_DENIED', 'certificate is revoked'),
  certificate_parsing_failed: entry('INVALID_ARGUMENT', 'certificate parsing failed'),
  private_key_parsing_failed: entry('INVALID_ARGUMENT', 'private key parsing failed'),
  csr_invalid: entry('INVALID_ARGUMENT', 'certificate signing request is invalid'),
  csr_signature_invalid: entry('PERMISSION_DENIED', 'certificate signing request is not signed by the device identity'),
  server_generated_keys_disabled: entry(
    'FAILED_PRECONDITION',
    'a certificate signing request is required; start the gateway with --allow-server-generated-keys to accept clients without one',
  ),
  // A verification failure of the hello like the others above, so the same status (REFERENCE.md §3.3 step 4).
  legacy_device_id_refused: entry(
    'FAILED_PRECONDITION',
    'device_id is not derived from the signing key; start the gateway with --allow-legacy-device-ids to accept it',
  ),

  // --- pairing codes, QR URIs and requests --------------------------------------------------------------------
  pairing_code_invalid: entry('FAILED_PRECONDITION', 'pairing code is missing or expired'),
  pairing_code_expired: entry('FAILED_PRECONDITION', 'pairing code has expired'),
  pairing_code_method_mismatch: entry('FAILED_PRECONDITION', 'pairing code method does not match request'),
  pairing_budget_exhausted: entry(
    'RESOURCE_EXHAUSTED',
    'too many failed pairing attempts; PIN pairing is disabled until an operator mints a new code',
  ),
  pairing_uri_invalid: entry('INVALID_ARGUMENT', 'pairing URI is invalid'),
  pairing_uri_unsupported_version: entry('INVALID_ARGUMENT', 'pairing URI version is not supported'),
  pairing_uri_missing_token: entry('INVALID_ARGUMENT', 'pairing URI has no token'),
  pairing_uri_bad_token: entry('INVALID_ARGUMENT', 'pairing URI token is malformed'),
  pairing_uri_bad_pin: entry('INVALID_ARGUMENT', 'pairing URI CA pin is not a base64url SHA-256 digest'),
  pairing_uri_bad_address: entry('INVALID_ARGUMENT', 'pairing URI gateway address is invalid'),
  pairing_uri_bad_kind: entry('INVALID_ARGUMENT', 'pairing URI client kind must be one of desktop|node|cli'),
  pairing_uri_bad_method: entry('INVALID_ARGUMENT', 'pairing URI method must be qr or pin'),
  pairing_uri_expired: entry('FAILED_PRECONDITION', 'pairing code in the URI has expired'),
  pairing_uri_bad_expiry: entry('INVALID_ARGUMENT', 'pairing URI expiry is not a unix time in seconds'),
  pairing_uri_bad_name: entry('INVALID_ARGUMENT', 'pairing URI gateway name is invalid'),
  pairing_request_not_found: entry('NOT_FOUND', 'pairing request was not found'),
  pairing_request_not_pending: entry('FAILED_PRECONDITION', 'pairing request is not pending approval'),
  pairing_request_forbidden: entry('PERMISSION_DENIED', 'pairing request does not belong to the requested device_id'),
  pairing_rejected: entry('FAILED_PRECONDITION', 'pairing request was rejected by the operator'),
  pairing_expired: entry('FAILED_PRECONDITION', 'pairing request expired'),
  ca_pin_mismatch: entry('PERMISSION_DENIED', "gateway CA does not match the pin in the pairing code"),

  // --- store, state, keychain ---------------------------------------------------------------------------------
  invalid_secret_store_key: entry('INVALID_ARGUMENT', 'invalid secret store key'),
  secret_not_found: entry('NOT_FOUND', 'secret not found'),
  store_decrypt_failed: entry('INTERNAL', 'failed to decrypt identity store payload at rest'),
  store_truncated: entry('INTERNAL', 'identity store payload header is truncated'),
  store_plaintext_refused: entry('INTERNAL', 'identity store file is not encrypted; refusing plaintext'),
  store_io_failed: entry('INTERNAL', 'identity store I/O failed'),
  state_corrupt: entry('INTERNAL', 'identity state is corrupt'),
  state_rollback: entry('INTERNAL', 'identity state generation went backwards (rollback detected)'),
  state_lock_timeout: entry('UNAVAILABLE', 'timed out waiting for the identity state lock'),
  state_unavailable: entry('UNAVAILABLE', 'the state database is unavailable; nothing was changed'),
  keychain_locked: entry('UNAVAILABLE', 'the OS keychain is locked; unlock it and try again'),
  keychain_unavailable: entry('UNAVAILABLE', 'no OS keychain is available'),
  audit_chain_broken: entry('INTERNAL', 'audit log hash chain is broken'),
  ca_missing: entry('INTERNAL', 'the gateway CA is missing (no state yet, or the state lost its CA file)'),

  // --- gateway and transport ----------------------------------------------------------------------------------
  insecure_opt_out_refused: entry(
    'FAILED_PRECONDITION',
    '--insecure-node-rpc-opt-out is only allowed on a loopback listen address',
  ),
  gateway_unreachable: entry('UNAVAILABLE', 'gateway is unreachable'),
  tls_handshake_failed: entry('UNAVAILABLE', 'TLS handshake with the gateway failed'),
  payload_too_large: entry('RESOURCE_EXHAUSTED', 'payload exceeds the allowed size'),
  node_not_registered: entry('FAILED_PRECONDITION', 'node must register before executing capabilities'),
  capability_timeout: entry('DEADLINE_EXCEEDED', 'timed out waiting for node capability result'),
  capability_unknown: entry('INVALID_ARGUMENT', 'unknown capability'),
  capability_denied: entry('PERMISSION_DENIED', 'capability was denied locally'),
  pairing_request_not_approved: entry('FAILED_PRECONDITION', 'pairing request is not approved'),
  device_identity_missing: entry('FAILED_PRECONDITION', 'no device identity is stored for this device directory'),
  certificate_expired: entry('FAILED_PRECONDITION', 'the device certificate has expired; pair this device again'),
  remote_admin_requires_mtls: entry('FAILED_PRECONDITION', 'remote administration requires mTLS'),
  certificate_unknown: entry('UNAUTHENTICATED', 'the client certificate is not one this gateway issued, or it has expired'),
  unauthenticated_call_limit: entry('RESOURCE_EXHAUSTED', 'too many concurrent calls without a client certificate'),
  // device.v1.json failed its seal (PROTOCOL.md §13): edited, swapped, restored from an older copy or deleted.
  device_state_corrupt: entry(
    'INTERNAL',
    "the device state failed its integrity check; unpair and pair again (palyra device unpair, then palyra device pair)",
  ),
  // --- PIN pairing v2 (SPAKE2+, RFC 9383) ------------------------------------------------------------------------
  pake_invalid_share: entry('INVALID_ARGUMENT', 'SPAKE2+ share is not a valid P-256 point'),
  pake_confirmation_failed: entry(
    'FAILED_PRECONDITION',
    'wrong PIN, or someone is intercepting this connection',
  ),
  pake_required: entry('FAILED_PRECONDITION', 'this gateway requires PIN pairing v2 (SPAKE2+); the PIN must not be sent'),
  // Device side: too many failed PIN confirmations against one gateway CA.
  pake_attempts_exhausted: entry(
    'RESOURCE_EXHAUSTED',
    'too many failed PIN confirmations with this gateway; ask the operator for a QR code or a new PIN and check the network',
  ),
  // `state migrate --from-dir`: the target database already holds a gateway state (or any row of one).
  state_not_empty: entry('FAILED_PRECONDITION', 'the target state database is not empty; nothing was copied'),
  // Append new codes above this line; keep them snake_case and never reuse a retired code.
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface PalyraErrorOptions {
  readonly cause?: unknown;
  /** Structured, non-secret details (limits, expected/got, file names) for JSON output and tests. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** The only error type that crosses module boundaries. */
export class PalyraError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message?: string, options: PalyraErrorOptions = {}) {
    super(message ?? ERROR_CATALOGUE[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PalyraError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get grpcStatus(): GrpcStatusName {
    return ERROR_CATALOGUE[this.code].grpc;
  }

  /** The `{code, message}` shape used by CLI JSON, IPC and the UI. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

export function isPalyraError(value: unknown, code?: ErrorCode): value is PalyraError {
  return value instanceof PalyraError && (code === undefined || value.code === code);
}

/** Wraps anything thrown into a PalyraError (unknown failures become `internal`, keeping the cause). */
export function toPalyraError(value: unknown): PalyraError {
  if (value instanceof PalyraError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new PalyraError('internal', message, { cause: value });
}
