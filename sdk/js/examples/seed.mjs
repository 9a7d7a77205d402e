// The book-translation seed's SDK example exactly as published (only the import and the
// constructor renamed). It ends in an error ON PURPOSE of the seed's order, not Herald's:
// it deletes the webhook and then tests it, and Herald answers a deleted webhook with
// HTTP 404 (HeraldError, code not_found). README's "Client libraries" example is the
// same code with `test` before `delete`, and runs to the end.
import { Herald } from 'herald-webhooks';
const client = new Herald({ apiKey: 'lector_xxx' });
// Crear webhook
const webhook = await client.webhooks.create({
url: 'https://tu-servidor.com/webhook',
events: ['book.completed', 'translation.error']
});
console.log('Webhook creado:', webhook.id);
console.log('Secret:', webhook.secret); // Guarda este secret!
// Listar webhooks
const webhooks = await client.webhooks.list();
// Eliminar webhook
await client.webhooks.delete(webhook.id);
// Test webhook (envía evento de prueba)
await client.webhooks.test(webhook.id);
