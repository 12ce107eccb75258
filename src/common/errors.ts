/** An error a user can act on: a stable code and a message naming the problem. */
export class AugurError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'AugurError';
  }
}
