// herald-webhooks: a client for Herald's API and the receiver-side signature check.
export { Herald } from './client.js';
export { HeraldError, WebhookVerificationError } from './errors.js';
export { Page, PagePromise } from './pagination.js';
export { verify, sign } from './verify.js';
