// Type declarations of herald-webhooks, written by hand beside src/ (plain JavaScript).
// Field names of requests and answers are the API's own (snake_case), as in Herald's README.

export interface HeraldOptions {
  /** Admin token or tenant API key. Default: $HERALD_API_KEY. */
  apiKey?: string;
  /** Where Herald listens. Default: $HERALD_BASE_URL, else http://127.0.0.1:8080. */
  baseUrl?: string;
  /** The tenant the admin token acts on (sent as X-Herald-Tenant). */
  tenant?: string;
  /** Per attempt, in milliseconds. Default 30 000. */
  timeout?: number;
  /** Extra attempts of idempotent calls after a network error, 429 or 5xx. Default 2. */
  maxRetries?: number;
  fetch?: typeof fetch;
}

export type SignatureScheme = 'standard' | 'timestamped' | 'body';
export type EndpointStatus = 'active' | 'paused' | 'disabled';
export type DeliveryStatus = 'pending' | 'succeeded' | 'failed' | 'cancelled';
/** A time the API parses: RFC 3339 text, unix seconds, or a Date. */
export type TimeInput = string | number | Date;

export type WebhookType = 'push' | 'poll';

/**
 * How Herald authenticates to an endpoint. The secret (password, token, client_secret) is
 * write-only: answers show "********", and "********" sent back keeps the stored one.
 */
export type WebhookAuth =
  | { type: 'basic'; username: string; password: string }
  | { type: 'bearer'; token: string }
  | {
      /** Herald fetches a token with the client credentials grant, caches it, and replaces it once on a 401. */
      type: 'oauth2_client_credentials';
      token_url: string;
      client_id: string;
      client_secret: string;
      scope?: string;
      audience?: string;
    };

export interface Webhook {
  id: number;
  /** push: Herald POSTs to url; poll: no url, the consumer calls webhooks.poll. */
  type: WebhookType;
  url: string | null;
  events: string[];
  status: EndpointStatus;
  description: string;
  headers: Record<string, string>;
  /** Per-endpoint schemes; null means the deployment default. */
  signature: SignatureScheme[] | null;
  disabled_reason: string | null;
  /** Disabled after failing this long without a success, such as "12h"; null: the deployment's disable_after. */
  disable_after: string | null;
  /** The client certificate presented to this endpoint (mTLS); its key is never answered. */
  client_certificate: ClientCertificate | null;
  /** PEM: the only roots trusted for this endpoint; null: the web's and extra_ca_file. */
  ca_bundle: string | null;
  /** Its own proxy (password masked "********") or "none"; null: the deployment's proxy. */
  proxy: string | null;
  /** Its auth with the secret shown as "********"; null: none. */
  auth: WebhookAuth | null;
  /** Its transformation's JavaScript; null: deliveries go as published. */
  transformation: string | null;
  /** An RFC 9535 JSONPath filter expression over the payload; null: none. */
  filter: string | null;
  tenant_id: string;
  created_at: string;
  updated_at: string;
}

/** What is shown of an endpoint's client certificate. */
export interface ClientCertificate {
  /** RFC 4514, such as "CN=herald". */
  subject: string;
  issuer: string;
  /** SHA-256 of the DER, "AB:CD:…" as openssl prints it. */
  fingerprint_sha256: string;
  not_before: string;
  not_after: string;
}

/** Answered by create and rotateSecret only: the one time the secret is shown. */
export interface WebhookWithSecret extends Webhook {
  secret: string;
}

export interface WebhookCreateParams {
  /** push (the default) or poll. */
  type?: WebhookType;
  /** Required for a push endpoint; a poll endpoint has none. */
  url?: string;
  events: string[];
  secret_key?: string;
  /** Same as secret_key. */
  secretKey?: string;
  description?: string;
  headers?: Record<string, string>;
  status?: EndpointStatus;
  signature?: SignatureScheme[];
  /** Such as "12h" (1m to 365d); absent: the deployment's disable_after. */
  disable_after?: string;
  /** PEM, presented on the TLS handshake (mTLS); needs client_key. */
  client_certificate?: string;
  /** PEM; write-only (sealed at rest, never answered). */
  client_key?: string;
  /** PEM: the only CA certificates trusted for this endpoint. */
  ca_bundle?: string;
  /** A forward proxy URL such as "http://user:pass@proxy:3128", or "none". */
  proxy?: string;
  /** How Herald authenticates to the endpoint (not with an extra Authorization header). */
  auth?: WebhookAuth;
  /** JavaScript defining `function handler(webhook) { … return webhook; }` (push only). */
  transformation?: string;
  /** A JSONPath filter expression over the payload, e.g. `$.data.amount > 1000 && $.status == "paid"`. */
  filter?: string | null;
}

export interface WebhookUpdateParams {
  url?: string;
  events?: string[];
  description?: string;
  headers?: Record<string, string>;
  status?: EndpointStatus;
  /** null returns to the deployment default. */
  signature?: SignatureScheme[] | null;
  /** null returns to the deployment's disable_after. */
  disable_after?: string | null;
  /** Without client_key the stored key is kept; null removes both. */
  client_certificate?: string | null;
  client_key?: string;
  /** null returns to the web's roots. */
  ca_bundle?: string | null;
  /** A URL, "none", or null for the deployment's; a masked password keeps the stored one. */
  proxy?: string | null;
  /** null (or "") removes the payload filter. */
  filter?: string | null;
  /** null removes it; a secret sent as "********" keeps the stored one. */
  auth?: WebhookAuth | null;
  /** null removes it. */
  transformation?: string | null;
}

export interface TransformationTrialParams {
  /** A sample payload, as it would be published. */
  payload: unknown;
  /** `webhook.eventType`; absent: the payload's `event`, else "test.event". */
  event?: string;
  /** A transformation to try instead of the saved one (nothing is saved). */
  transformation?: string;
}

/** What a transformation's trial came to. */
export interface TransformationTrial {
  outcome: 'send' | 'cancel' | 'error';
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  /** The body that would be signed and sent, byte for byte. */
  body?: string;
  error?: string;
  duration_ms: number;
}

export interface ListParams {
  limit?: number;
  cursor?: string;
}

export interface WebhookListParams extends ListParams {
  status?: EndpointStatus;
}

export interface DeliveryListParams extends ListParams {
  status?: DeliveryStatus;
  endpointId?: number;
  eventId?: string;
  since?: TimeInput;
  until?: TimeInput;
}

export interface EventListParams extends ListParams {
  /** Only events of this type. */
  event?: string;
  since?: TimeInput;
  until?: TimeInput;
}

/** An event payload: a JSON object with a string `event`. */
export interface EventPayload {
  event: string;
  [field: string]: unknown;
}

export interface Published {
  id: string;
  event: string;
  /** How many deliveries were queued. */
  deliveries: number;
}

export interface PublishResult extends Published {
  /** True when an earlier publish with the same idempotency key was returned. */
  replayed: boolean;
}

export interface BatchResult {
  events: Published[];
  deliveries: number;
  replayed: boolean;
}

export interface PublishOptions {
  /**
   * Makes a retried publish return the first result instead of a second event. Left out,
   * each call gets a random key of its own, reused by its retries; `null` sends none (the
   * publish is then sent once, never retried).
   */
  idempotencyKey?: string | null;
}

export interface Event {
  id: string;
  event: string;
  payload: Record<string, unknown>;
  tenant_id: string;
  created_at: string;
}

export interface Delivery {
  id: number;
  event_id: string;
  event: string;
  endpoint_id: number;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface EventWithDeliveries extends Event {
  deliveries: Delivery[];
}

export interface Attempt {
  id: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_headers: Record<string, unknown> | null;
  response_body: string | null;
}

export interface DeliveryWithAttempts extends Delivery {
  attempt_log: Attempt[];
}

export interface TestSent {
  event_id: string;
  delivery_id: number;
  event: 'webhook.test';
}

export interface Recovered {
  id: number;
  recovered: number;
}

export interface ReplayParams {
  since: TimeInput;
  /** Absent: now. */
  until?: TimeInput;
  /** The `next` of the previous answer. */
  cursor?: string | null;
  /** Deliveries created in this call at most, 1 to 10000 (the default). */
  limit?: number;
  /** Count only; create nothing. */
  dryRun?: boolean;
}

export interface Replayed {
  id: number;
  dry_run: boolean;
  since: string;
  until: string;
  /** Deliveries created (a dry run: that would be), one per event. */
  count: number;
  /** The first ten of those events, oldest first. */
  event_ids: string[];
  /** Pass as `cursor` to go on; null once the window is done. */
  next: string | null;
  /** Present when `since` is before what retention keeps. */
  retention?: {
    kept_since: string;
    oldest_event: { id: string; created_at: string } | null;
    message: string;
  };
}

export interface EventType {
  name: string;
  description: string;
  example: Record<string, unknown> | null;
  /** A JSON Schema (draft 2020-12) every publish of this type must satisfy; null: none. */
  schema: Record<string, unknown> | null;
  created_at: string;
}

export interface EventTypeCreateParams {
  name: string;
  description?: string;
  example?: Record<string, unknown> | null;
  /** Enforced at publish: a payload that fails it is refused with 400 `schema_violation`. */
  schema?: Record<string, unknown> | null;
}

export interface Tenant {
  id: string;
  name: string;
  created_at: string;
}

export interface ApiKey {
  id: number;
  tenant_id: string;
  name: string;
  /** The first characters of the token, to recognise it. */
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

/** Answered by keys.create only: the one time the token is shown. */
export interface NewApiKey extends ApiKey {
  token: string;
}

export class Page<T> implements AsyncIterable<T> {
  readonly data: T[];
  readonly nextCursor: string | null;
  hasNextPage(): boolean;
  nextPage(): Promise<Page<T> | null>;
  pages(): AsyncGenerator<Page<T>, void, undefined>;
  [Symbol.asyncIterator](): AsyncIterator<T>;
}

/** `await` it for the first page; `for await` over it for every item of every page. */
export class PagePromise<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
  then<R1 = Page<T>, R2 = never>(
    onFulfilled?: ((page: Page<T>) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2>;
  catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<Page<T> | R>;
  finally(onFinally?: (() => void) | null): Promise<Page<T>>;
  [Symbol.asyncIterator](): AsyncIterator<T>;
  toArray(): Promise<T[]>;
}

export class Webhooks {
  create(params: WebhookCreateParams): Promise<WebhookWithSecret>;
  list(params?: WebhookListParams): PagePromise<Webhook>;
  get(id: number): Promise<Webhook>;
  update(id: number, params: WebhookUpdateParams): Promise<Webhook>;
  delete(id: number): Promise<{ id: number }>;
  test(id: number): Promise<TestSent>;
  rotateSecret(id: number): Promise<WebhookWithSecret>;
  /** Runs the transformation on a sample in the delivery sandbox; nothing is sent. */
  testTransformation(id: number, params: TransformationTrialParams): Promise<TransformationTrial>;
  recover(id: number, params: { since: TimeInput }): Promise<Recovered>;
  /** Creates the deliveries this endpoint missed in [since, until); `dryRun` only counts. */
  replay(id: number, params: ReplayParams): Promise<Replayed>;
  deliveries(id: number, params?: Omit<DeliveryListParams, 'endpointId'>): PagePromise<Delivery>;
  /** A poll endpoint's pending deliveries, oldest first; `cursor` acknowledges up to it. */
  poll(id: number, params?: { cursor?: string; limit?: number }): Promise<PollResult>;
}

export interface PolledDelivery {
  delivery_id: number;
  event_id: string;
  event: string;
  /** The exact signed bytes. */
  body: string;
  /** The signature headers a push would carry. */
  headers: Record<string, string>;
  created_at: string;
}

export interface PollResult {
  data: PolledDelivery[];
  /** Pass it to the next poll to acknowledge what this one answered. */
  next_cursor: string | null;
}

export class Events {
  /** A payload object, or its JSON text sent byte for byte. */
  publish(event: EventPayload | string, options?: PublishOptions): Promise<PublishResult>;
  publishBatch(events: Array<EventPayload>, options?: PublishOptions): Promise<BatchResult>;
  list(params?: EventListParams): PagePromise<Event>;
  get(id: string): Promise<EventWithDeliveries>;
}

export class Deliveries {
  list(params?: DeliveryListParams): PagePromise<Delivery>;
  get(id: number): Promise<DeliveryWithAttempts>;
  retry(id: number): Promise<Delivery>;
}

export class EventTypes {
  list(params?: ListParams): PagePromise<EventType>;
  create(params: EventTypeCreateParams): Promise<EventType>;
  get(name: string): Promise<EventType>;
  delete(name: string): Promise<{ name: string }>;
}

export class Keys {
  list(tenantId: string, params?: ListParams): PagePromise<ApiKey>;
  create(tenantId: string, params?: { name?: string }): Promise<NewApiKey>;
  revoke(tenantId: string, keyId: number): Promise<ApiKey>;
}

export class Tenants {
  readonly keys: Keys;
  list(params?: ListParams): PagePromise<Tenant>;
  create(params: { id: string; name?: string }): Promise<Tenant>;
  get(id: string): Promise<Tenant>;
  update(id: string, params: { name: string }): Promise<Tenant>;
  delete(id: string): Promise<{ id: string }>;
}

export class Health {
  check(): Promise<{ status: 'ok' }>;
  ready(): Promise<{ status: 'ready' }>;
  metrics(): Promise<string>;
}

export class Herald {
  constructor(options?: HeraldOptions);
  readonly webhooks: Webhooks;
  readonly events: Events;
  readonly deliveries: Deliveries;
  readonly eventTypes: EventTypes;
  readonly tenants: Tenants;
  readonly health: Health;
  /** The same client acting on another tenant (admin token only). */
  withTenant(tenant: string): Herald;
}

/** An API call that did not succeed. */
export class HeraldError extends Error {
  readonly name: 'HeraldError';
  /** The envelope's code (`not_found`, `validation_error`, ...), or `connection_error`,
   * `timeout`, `http_error`, `invalid_response` when no envelope came back. */
  readonly code: string;
  /** The HTTP status; 0 when no answer came back. */
  readonly status: number;
  readonly body: unknown;
}

export class WebhookVerificationError extends Error {
  readonly name: 'WebhookVerificationError';
}

export type HeadersLike =
  | Record<string, string | string[] | undefined>
  | { entries(): IterableIterator<[string, string]> };

export interface VerifyOptions {
  /** Default: the first scheme whose headers are present: standard, timestamped, body. */
  scheme?: SignatureScheme;
  /** The timestamped scheme's header prefix. Default 'X-Herald'. */
  prefix?: string;
  /** The body scheme's header. Default 'X-Webhook-Signature'. */
  bodyHeader?: string;
  /** Seconds a timestamp may be away from now. Default 300. */
  tolerance?: number;
  /**
   * Instead of the clock: a Date or Unix seconds (as `sign`'s `timestamp` and the Python
   * library). A number of 10^11 or more is read as epoch milliseconds, the earlier meaning.
   */
  now?: Date | number;
}

/** Checks a delivery's signature and returns its parsed payload; throws WebhookVerificationError. */
export function verify<T = unknown>(
  body: string | Uint8Array | ArrayBuffer,
  headers: HeadersLike,
  secret: string | string[],
  options?: VerifyOptions,
): T;

export interface SignOptions {
  scheme?: SignatureScheme;
  /** webhook-id of the standard scheme. Default: a random one. */
  id?: string;
  /** Unix seconds. Default: now. */
  timestamp?: number;
  prefix?: string;
  bodyHeader?: string;
}

/** The signature headers Herald would send: for testing a receiver. */
export function sign(body: string | Uint8Array, secret: string, options?: SignOptions): Record<string, string>;
