// The one place that talks HTTP: builds the request, unwraps the `{"success", "data"}`
// envelope, turns refusals into HeraldError, and retries what is safe to retry.
//
// Retries: a call marked idempotent (reads, deletes, field-setting updates, publishes, which
// carry an Idempotency-Key by default) is sent again after a network error, a timeout, a 429 or a
// 5xx, with exponential back-off and jitter; `Retry-After` wins when the server sends it.
// A non-idempotent call (a publish whose key the caller turned off, "send test", rotate) is
// sent once,
// because sending it twice could do the thing twice.

import { HeraldError } from './errors.js';

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const MAX_BACKOFF_MS = 8_000;
const MAX_RETRY_AFTER_MS = 60_000;

export class Transport {
  constructor({ apiKey, baseUrl, tenant, timeout, maxRetries, fetch: fetchImpl }) {
    this.apiKey = apiKey;
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.tenant = tenant;
    this.timeout = timeout;
    this.maxRetries = maxRetries;
    this.fetch = fetchImpl;
  }

  /**
   * Sends one API call. Returns `{data, envelope, response}` for JSON answers and
   * `{text, response}` when `expect` is 'text'.
   */
  async request(method, path, { query, body, headers = {}, idempotent = false, expect = 'json' } = {}) {
    const url = this.baseUrl + path + queryString(query);
    const init = { method, headers: this.headers(headers, body !== undefined) };
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      const retriesLeft = idempotent && attempt < this.maxRetries;
      let response;
      try {
        response = await this.fetch(url, { ...init, signal: AbortSignal.timeout(this.timeout) });
      } catch (cause) {
        if (retriesLeft) {
          await sleep(backoff(attempt));
          continue;
        }
        throw networkError(cause, method, url);
      }
      if (retriesLeft && RETRYABLE_STATUS.has(response.status)) {
        await response.arrayBuffer().catch(() => {});
        await sleep(retryAfter(response) ?? backoff(attempt));
        continue;
      }
      return read(response, expect);
    }
  }

  headers(extra, hasBody) {
    const headers = { accept: 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (this.tenant) headers['x-herald-tenant'] = this.tenant;
    if (hasBody) headers['content-type'] = 'application/json';
    return { ...headers, ...extra };
  }
}

function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    params.append(key, value instanceof Date ? value.toISOString() : String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

async function read(response, expect) {
  const text = await response.text();
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    envelope = undefined;
  }
  const error = envelope && typeof envelope === 'object' ? envelope.error : undefined;
  if (!response.ok) {
    if (error && typeof error.code === 'string') {
      throw new HeraldError(error.message ?? error.code, { code: error.code, status: response.status, body: envelope });
    }
    throw new HeraldError(`HTTP ${response.status} without an error envelope: ${text.slice(0, 200)}`, {
      code: 'http_error',
      status: response.status,
      body: text,
    });
  }
  if (expect === 'text') return { text, response };
  if (!envelope || envelope.success !== true) {
    throw new HeraldError(`HTTP ${response.status} answered something that is not Herald's envelope`, {
      code: 'invalid_response',
      status: response.status,
      body: text,
    });
  }
  return { data: envelope.data, envelope, response };
}

function networkError(cause, method, url) {
  const timedOut = cause?.name === 'TimeoutError' || cause?.name === 'AbortError';
  const what = timedOut ? 'timed out' : `failed (${cause?.cause?.code ?? cause?.message ?? cause})`;
  return new HeraldError(`${method} ${url} ${what}`, {
    code: timedOut ? 'timeout' : 'connection_error',
    status: 0,
    cause,
  });
}

/** Exponential back-off with jitter: ~0.5 s, 1 s, 2 s, ... capped at 8 s. */
export function backoff(attempt) {
  const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);
  return base * (0.75 + Math.random() * 0.25);
}

/** `Retry-After` as milliseconds (seconds or an HTTP date), capped; undefined when absent. */
export function retryAfter(response) {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
