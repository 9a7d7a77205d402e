// The two errors the package throws: HeraldError for anything the API (or the way to it)
// refused, WebhookVerificationError for a delivery that does not prove it came from Herald.

/** An API call that did not succeed: the envelope's code and message, and the HTTP status. */
export class HeraldError extends Error {
  /**
   * @param {string} message
   * @param {{code: string, status: number, body?: unknown, cause?: unknown}} details
   */
  constructor(message, { code, status, body, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HeraldError';
    this.code = code;
    this.status = status;
    this.body = body;
  }
}

/** A webhook whose signature, timestamp or headers do not check out. */
export class WebhookVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}
