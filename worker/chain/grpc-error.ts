// An error a gRPC handler answers with: the status code decides what the caller may do (UNAVAILABLE:
// try again later; FAILED_PRECONDITION: fix the request or the group), the details say why.
import type { ServiceError, status } from '@grpc/grpc-js';

export function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: undefined as never });
}
