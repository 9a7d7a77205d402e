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
