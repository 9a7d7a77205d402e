# The book-translation seed's SDK example exactly as published (only the import and the
# constructor renamed). It ends in an error ON PURPOSE of the seed's order, not Herald's:
# it deletes the webhook and then tests it, and Herald answers a deleted webhook with
# HTTP 404 (HeraldError, code not_found). README's "Client libraries" example is the
# same code with `test` before `delete`, and runs to the end.
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
