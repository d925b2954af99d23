/**
 * Client side of the error contract: a gRPC failure becomes a PalyraError with the gateway's stable code when the
 * gateway sent one (metadata `palyra-error-code`), else a code derived from the gRPC status.
 */

import * as grpc from '@grpc/grpc-js';
import { PalyraError, isErrorCode } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';

export const ERROR_CODE_METADATA_KEY = 'palyra-error-code';

const BY_STATUS: Partial<Record<grpc.status, ErrorCode>> = {
  [grpc.status.INVALID_ARGUMENT]: 'invalid_argument',
  [grpc.status.NOT_FOUND]: 'not_found',
  [grpc.status.PERMISSION_DENIED]: 'permission_denied',
  [grpc.status.UNAUTHENTICATED]: 'unauthenticated',
  [grpc.status.RESOURCE_EXHAUSTED]: 'payload_too_large',
  [grpc.status.DEADLINE_EXCEEDED]: 'timeout',
  [grpc.status.UNAVAILABLE]: 'gateway_unreachable',
  [grpc.status.CANCELLED]: 'cancelled',
};

export function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as Partial<grpc.ServiceError>).code === 'number' && 'metadata' in e;
}

export function fromServiceError(e: unknown): PalyraError {
  if (e instanceof PalyraError) return e;
  if (!isServiceError(e)) return new PalyraError('internal', e instanceof Error ? e.message : String(e), { cause: e });
  const sent = e.metadata.get(ERROR_CODE_METADATA_KEY)[0];
  const code: ErrorCode = typeof sent === 'string' && isErrorCode(sent) ? sent : (BY_STATUS[e.code] ?? 'internal');
  return new PalyraError(code, e.details || e.message, { cause: e, details: { grpc_status: e.code } });
}

/** Promise form of a unary call with a deadline: `callUnary((md, opts, cb) => client.Method(request, md, opts, cb), ms)`. */
export function callUnary<Res>(
  invoke: (metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => unknown,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Res> {
  if (signal?.aborted === true) return Promise.reject(new PalyraError('cancelled', 'the call was cancelled'));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      if (call !== null && typeof (call as Partial<grpc.ClientUnaryCall>).cancel === 'function') (call as grpc.ClientUnaryCall).cancel();
    };
    const call: unknown = invoke(new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      signal?.removeEventListener('abort', onAbort);
      if (error !== null) reject(signal?.aborted === true ? new PalyraError('cancelled', 'the call was cancelled') : fromServiceError(error));
      else if (response === undefined) reject(new PalyraError('internal', 'empty gRPC response'));
      else resolve(response);
    });
    // A cancelled call answers CANCELLED through the callback above, so the promise settles once.
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
