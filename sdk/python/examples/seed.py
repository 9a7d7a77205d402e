from herald_webhooks import Herald
client = Herald(api_key='lector_xxx')
# Crear webhook
webhook = client.webhooks.create(
url='https://tu-servidor.com/webhook',
events=['book.completed', 'translation.error']
)
print('Webhook creado:', webhook.id)
print('Secret:', webhook.secret) # Guarda este secret!
# Listar webhooks
webhooks = client.webhooks.list()
# Eliminar webhook
client.webhooks.delete(webhook.id)
# Test webhook (envía evento de prueba)
client.webhooks.test(webhook.id)
