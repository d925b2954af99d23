import type { ErrorCode } from '../../../main/core/errors.js';

/** A failure as the UI handles it: the stable code from the error catalogue and the main process's message. */
export interface UiError {
  readonly code: string;
  readonly message: string;
}

/**
 * What the person reads for each catalogue code: what happened and what to do. Typed as a record over every
 * ErrorCode, so a code added to main/core/errors.ts does not compile here until it has a text.
 */
export const ERROR_TEXT: Readonly<Record<ErrorCode, string>> = {
  // generic
  invalid_argument: 'That input is not valid. Check what you entered and try again.',
  usage: 'That command is not valid.',
  not_found: 'That item no longer exists.',
  internal: 'Something went wrong inside Palyra. Try again; if it keeps happening, restart the app.',
  cryptographic: 'A cryptographic operation failed. Try again.',
  cancelled: 'Pairing was cancelled.',
  unauthenticated: 'Not authenticated. In a browser, open a fresh link: run `npm start -- --new-link` where Palyra runs and open the address it prints; otherwise pair this device again.',
  permission_denied: 'The gateway refused this request.',
  unavailable: 'The service is not available right now. Try again in a moment.',
  timeout: 'This took too long and was stopped. Make sure the operator approves the device, then retry.',
  browser_link_used: 'This link was already used: each link Palyra prints opens it once. Run `npm start -- --new-link` where Palyra runs and open the new address it prints.',

  // identifiers and identities
  invalid_canonical_id: 'That device id is not valid.',
  device_id_mismatch: "The gateway refused this device: its id does not match its identity key.",
  invalid_public_key: 'A public key in the exchange was not valid. Retry the pairing.',
  invalid_key_material: 'Key material was not valid. Retry the pairing.',

  // handshake
  invalid_pairing_proof: 'The gateway did not accept the pairing code. Check the code, or ask for a new one.',
  pairing_session_not_found: 'The gateway has forgotten this pairing session. Start again.',
  pairing_session_expired: 'The pairing session timed out. Start again.',
  pairing_session_capacity_exceeded: 'The gateway is busy with other pairings. Try again in a minute.',
  pairing_session_rate_limited: 'Too many pairing attempts in a short time. Wait a minute and try again.',
  pairing_version_mismatch: 'This gateway speaks a different pairing protocol version. Update Palyra on one side.',
  pairing_client_kind_mismatch: 'This code was made for another kind of device. Ask the operator for a code for this device.',
  signature_verification_failed: "The device's signature was not accepted. Retry the pairing.",
  transcript_verification_failed: 'The pairing exchange did not verify: someone may be interfering with the connection. Do not approve; start again.',
  weak_key_exchange: 'The key exchange was unsafe and was stopped. Start again.',

  // devices, certificates, revocation
  device_revoked: 'This device has been revoked by the gateway. The operator must unban it before it can pair again.',
  device_not_paired: 'This device is not paired with a gateway.',
  certificate_revoked: "This device's certificate has been revoked. Pair the device again.",
  certificate_parsing_failed: 'The certificate from the gateway could not be read. Retry the pairing.',
  private_key_parsing_failed: 'A stored private key could not be read.',
  csr_invalid: 'The gateway did not accept the certificate request. Retry the pairing.',
  csr_signature_invalid: 'The gateway did not accept the certificate request signature. Retry the pairing.',
  server_generated_keys_disabled: 'The gateway requires a certificate request from the device (this app sends one; an older client does not).',
  legacy_device_id_refused: 'The gateway refused this device id because it is not derived from its key.',

  // pairing codes, URIs, requests
  pairing_code_invalid: 'That pairing code is not valid: it was already used, expired, or mistyped. Ask the operator for a new code.',
  pairing_code_expired: 'That pairing code has expired. Ask the operator for a new code.',
  pairing_code_method_mismatch: 'That code is for another pairing method (QR or PIN). Use it the way it was made.',
  pairing_budget_exhausted: 'Too many wrong codes were tried, so PIN pairing is paused. The operator must make a new code.',
  pairing_uri_invalid: 'That is not a Palyra pairing link or QR code.',
  pairing_uri_unsupported_version: 'That pairing code is from a newer version of Palyra. Update this app.',
  pairing_uri_missing_token: 'That pairing link has no code in it.',
  pairing_uri_bad_token: 'The code in that pairing link is damaged. Scan it again or ask for a new one.',
  pairing_uri_bad_pin: "The gateway fingerprint in that pairing link is damaged. Scan it again or ask for a new one.",
  pairing_uri_bad_address: 'The gateway address in that pairing link is not valid.',
  pairing_uri_bad_kind: 'That pairing link names an unknown kind of device.',
  pairing_uri_bad_method: 'That pairing link names an unknown pairing method.',
  pairing_uri_expired: 'That pairing code has expired. Ask the operator for a new code.',
  pairing_uri_bad_expiry: 'The expiry in that pairing link is not valid.',
  pairing_uri_bad_name: 'The gateway name in that pairing link is not valid.',
  pairing_request_not_found: 'The gateway no longer knows this pairing request. Start again.',
  pairing_request_not_pending: 'This request was already decided or has expired.',
  pairing_request_forbidden: 'That pairing request belongs to another device.',
  pairing_rejected: 'The operator rejected this device.',
  pairing_expired: 'The request expired before the operator approved it. Start again and ask the operator to approve it in time.',
  ca_pin_mismatch: 'The gateway is not the one in the QR code: its certificate authority does not match the pin. Someone may be intercepting the connection. Pairing was stopped.',
  pairing_request_not_approved: 'The request has not been approved yet.',

  // store, state, keychain
  invalid_secret_store_key: 'A stored secret has an invalid name.',
  secret_not_found: 'A stored secret is missing.',
  store_decrypt_failed: 'Stored data could not be decrypted. The store key may have changed; see the log for the file.',
  store_truncated: 'A stored file is damaged (truncated).',
  store_plaintext_refused: 'A stored file is not encrypted and was refused.',
  store_io_failed: 'Palyra could not read or write its data. Check disk space and permissions.',
  state_corrupt: 'The saved state is damaged.',
  state_rollback: 'The saved state went back to an older version (rollback detected).',
  state_lock_timeout: 'Another Palyra process is holding the state. Wait a moment and retry.',
  state_not_empty: 'The target database already holds a gateway state; nothing was copied. Use an empty database.',
  state_unavailable: 'The state database cannot be reached right now; nothing was changed. It retries by itself once the database is back.',
  keychain_locked: 'Your keychain is locked. Unlock your keychain (login keyring) and retry.',
  keychain_unavailable: 'No keychain is available on this system.',
  audit_chain_broken: 'The audit log has been altered: its hash chain is broken.',
  ca_missing: "The gateway's CA is missing although its state exists. Restore it from a backup, or move the state directory away to start over.",

  // gateway and transport
  insecure_opt_out_refused: 'The insecure mode is only allowed on a loopback listen address.',
  gateway_unreachable: 'The gateway could not be reached. Check the address and that the gateway is running, then retry.',
  tls_handshake_failed: 'A secure connection to the gateway could not be set up. Check the address, then retry.',
  payload_too_large: 'The data was too large.',
  node_not_registered: 'The device has not registered with the gateway yet.',
  capability_timeout: 'The device did not answer in time.',
  capability_unknown: 'The device does not know that capability.',
  capability_denied: 'The device refused that capability.',
  device_identity_missing: 'This device has no identity yet.',
  certificate_expired: "This device's certificate has expired. Pair this device again.",
  device_state_corrupt:
    "This device's saved pairing was changed outside Palyra (edited, replaced by an older copy or deleted), so its gateway and pinned certificate can no longer be trusted and it will not connect. Unpair this device (palyra device unpair) and pair it again.",
  remote_admin_requires_mtls: 'Remote administration needs the gateway to require mTLS; it is off on this gateway.',
  certificate_unknown: "The gateway does not recognise this device's certificate (another gateway's, or expired). Pair the device again.",
  unauthenticated_call_limit: 'The gateway is busy with other unpaired devices right now. Try again in a moment.',

  // PIN pairing v2
  pake_invalid_share: 'The pairing exchange carried an invalid value and was stopped. Start again.',
  pake_confirmation_failed: 'The PIN did not match, or someone is intercepting this connection. Check the PIN and start again; if it keeps failing, do not pair over this network.',
  pake_required: 'This gateway only accepts the secure PIN exchange, which this device did not use. Update the app and try again.',
  pake_attempts_exhausted: 'The PIN failed too many times with this gateway. Do not pair over this network; ask the operator for a QR code or a new PIN.',
};

/**
 * Failures that mean the pairing code itself is no good (used, mistyped, expired, for another method or kind, or the
 * PIN budget spent): the gateway was reached and verified, the code was not accepted. A new code or PIN is what helps;
 * retrying the same one only fails again.
 */
const CODE_PROBLEMS: ReadonlySet<string> = new Set<ErrorCode>([
  'pairing_code_invalid',
  'pairing_code_expired',
  'pairing_code_method_mismatch',
  'pairing_budget_exhausted',
  'invalid_pairing_proof',
  'pairing_client_kind_mismatch',
  'pairing_uri_expired',
  'pake_confirmation_failed',
]);

/** Failures where trying the same thing again can work: the network, a busy or briefly unavailable gateway, a lock. */
const RETRYABLE: ReadonlySet<string> = new Set<ErrorCode>([
  'gateway_unreachable',
  'tls_handshake_failed',
  'unavailable',
  'timeout',
  'pairing_session_capacity_exceeded',
  'pairing_session_rate_limited',
  'pairing_session_not_found',
  'pairing_session_expired',
  'unauthenticated_call_limit',
  'keychain_locked',
  'state_lock_timeout',
  'internal',
]);

export function isCodeProblem(error: UiError): boolean {
  return CODE_PROBLEMS.has(error.code);
}

export function isRetryable(error: UiError): boolean {
  return RETRYABLE.has(error.code);
}

const FALLBACK_TEXT = 'Something went wrong.';

function isKnownCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_TEXT, code);
}

/** The human text for a code; unknown codes fall back to the message the main process sent. */
export function describeError(error: UiError): string {
  if (isKnownCode(error.code)) return ERROR_TEXT[error.code];
  return error.message === '' ? FALLBACK_TEXT : error.message;
}

/** `error[code]: message` or `code: message`, the shape a message takes when an error object lost its `code` property. */
const CODE_PREFIX = /^(?:error\[([a-z][a-z0-9_]*)\]|([a-z][a-z0-9_]*)):\s*(.*)$/s;

/**
 * Whatever a rejected API call produced, as `{code, message}`. A PalyraIpcError carries `code`; an error that came
 * through Electron's contextBridge may have only its message, so a known code at its start is recognised too.
 */
export function toUiError(value: unknown): UiError {
  if (typeof value === 'object' && value !== null) {
    const record = value as { code?: unknown; message?: unknown };
    const message = typeof record.message === 'string' ? record.message : '';
    if (typeof record.code === 'string' && record.code !== '') return { code: record.code, message };
    const match = CODE_PREFIX.exec(message);
    const code = match?.[1] ?? match?.[2];
    if (code !== undefined && isKnownCode(code)) return { code, message: match?.[3] ?? message };
    return { code: 'internal', message };
  }
  return { code: 'internal', message: typeof value === 'string' ? value : '' };
}
