// `new Herald({ apiKey, baseUrl })`: the resources of the API under one object, in the shape
// of the seed's SDK (`client.webhooks.create`, `client.webhooks.list`, ...).

import { Transport } from './http.js';
import { Deliveries, Events, EventTypes, Health, Tenants, Webhooks } from './resources.js';

const env = globalThis.process?.env ?? {};

export class Herald {
  /**
   * @param {object} [options]
   * @param {string} [options.apiKey]   admin token or tenant key; default $HERALD_API_KEY
   * @param {string} [options.baseUrl]  default $HERALD_BASE_URL, else http://127.0.0.1:8080
   * @param {string} [options.tenant]   the tenant the admin token acts on (X-Herald-Tenant)
   * @param {number} [options.timeout]  per attempt, in milliseconds (30 s)
   * @param {number} [options.maxRetries]  extra attempts of idempotent calls (2)
   * @param {typeof fetch} [options.fetch]
   */
  constructor(options = {}) {
    this.options = {
      apiKey: options.apiKey ?? env.HERALD_API_KEY,
      baseUrl: options.baseUrl ?? env.HERALD_BASE_URL ?? 'http://127.0.0.1:8080',
      tenant: options.tenant,
      timeout: options.timeout ?? 30_000,
      maxRetries: options.maxRetries ?? 2,
      fetch: options.fetch ?? ((...args) => globalThis.fetch(...args)),
    };
    const transport = new Transport(this.options);
    this.webhooks = new Webhooks(transport);
    this.events = new Events(transport);
    this.deliveries = new Deliveries(transport);
    this.eventTypes = new EventTypes(transport);
    this.tenants = new Tenants(transport);
    this.health = new Health(transport);
  }

  /** The same client acting on another tenant (admin token only). */
  withTenant(tenant) {
    return new Herald({ ...this.options, tenant });
  }
}
