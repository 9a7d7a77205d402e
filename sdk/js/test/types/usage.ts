// Compiled by `tsc --noEmit` (test/types.test.mjs): the declarations in index.d.ts must
// describe the seed's usage and the rest of the surface without a type error.

import {
  Herald,
  HeraldError,
  verify,
  sign,
  WebhookVerificationError,
  type Delivery,
  type Page,
  type Webhook,
  type WebhookWithSecret,
  type WebhookAuth,
} from 'herald-webhooks';

async function seedExample(): Promise<void> {
  const client = new Herald({ apiKey: 'lector_xxx' });
  const webhook: WebhookWithSecret = await client.webhooks.create({
    url: 'https://tu-servidor.com/webhook',
    events: ['book.completed', 'translation.error'],
  });
  const id: number = webhook.id;
  const secret: string = webhook.secret;
  const webhooks: Page<Webhook> = await client.webhooks.list();
  const first: Webhook | undefined = webhooks.data[0];
  await client.webhooks.test(webhook.id);
  await client.webhooks.delete(webhook.id);
  console.log(id, secret, first?.url);
}

async function everythingElse(client: Herald): Promise<void> {
  for await (const hook of client.webhooks.list({ limit: 50, status: 'active' })) {
    const url: string | null = hook.url;
    console.log(hook.type, url);
  }
  const authed = await client.webhooks.create({
    url: 'https://partner.example/hook',
    events: ['*'],
    auth: {
      type: 'oauth2_client_credentials',
      token_url: 'https://auth.partner.example/oauth/token',
      client_id: 'herald',
      client_secret: 's3cret',
      audience: 'https://partner.example',
    },
  });
  const auth: WebhookAuth | null = authed.auth;
  await client.webhooks.update(authed.id, { auth: { type: 'bearer', token: 't0ken' } });
  await client.webhooks.update(authed.id, { auth: null });
  console.log(auth?.type);
  const polled = await client.webhooks.poll(1, { limit: 10 });
  for (const d of polled.data) console.log(d.event_id, d.body, d.headers['webhook-signature']);
  await client.webhooks.poll(1, { cursor: polled.next_cursor ?? undefined });
  const page = await client.deliveries.list({ status: 'failed', endpointId: 1, since: new Date() });
  const next: Page<Delivery> | null = await page.nextPage();
  const all: Delivery[] = await client.webhooks.deliveries(1).toArray();
  console.log(next?.nextCursor, all.length);

  const published = await client.events.publish({ event: 'job.completed', data: { n: 1 } }, { idempotencyKey: 'k' });
  const replayed: boolean = published.replayed;
  const batch = await client.events.publishBatch([{ event: 'a.b' }]);
  const event = await client.events.get(batch.events[0].id);
  const attempts = (await client.deliveries.get(event.deliveries[0].id)).attempt_log;
  const code: number | null = attempts[0].status_code;
  console.log(replayed, code);

  await client.webhooks.update(1, { status: 'paused', signature: null });
  await client.webhooks.rotateSecret(1);
  const recovered: number = (await client.webhooks.recover(1, { since: '2026-01-01T00:00:00Z' })).recovered;
  const replay = await client.webhooks.replay(1, { since: new Date(), dryRun: true, limit: 100 });
  const more: string | null = replay.next;
  const filter: string | null = (await client.webhooks.update(1, { filter: '$.amount > 1' })).filter;
  console.log(replay.count, more, filter, replay.retention?.oldest_event?.id);
  await client.deliveries.retry(2);
  await client.eventTypes.create({ name: 'job.completed', example: { id: 1 } });
  await client.eventTypes.delete('job.completed');
  const tenant = await client.tenants.create({ id: 'acme' });
  const key = await client.tenants.keys.create(tenant.id, { name: 'backend' });
  const token: string = key.token;
  await client.tenants.keys.revoke('acme', key.id);
  const metrics: string = await client.health.metrics();
  console.log(recovered, token, metrics, client.withTenant('acme').tenants);

  try {
    await client.webhooks.get(1);
  } catch (e) {
    if (e instanceof HeraldError) console.log(e.code, e.status, e.message);
  }
}

function receive(rawBody: string, headers: Record<string, string>, secret: string): { event: string } {
  try {
    return verify<{ event: string }>(rawBody, headers, secret, { scheme: 'timestamped', prefix: 'X-Nano', tolerance: 60 });
  } catch (e) {
    if (e instanceof WebhookVerificationError) throw new Error('refused');
    throw e;
  }
}

const headers: Record<string, string> = sign('{}', 'whsec_abc=', { scheme: 'body' });
console.log(seedExample, everythingElse, receive, headers);
