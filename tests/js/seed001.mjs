// Seed 001's signature verification snippet (shared/seeds/001_*.txt, "Verificación de
// Firma"), copied between the markers. The seed is TypeScript: the only change is that the
// three type annotations of verifyWebhook's parameters (`: string`) are removed, so plain
// node runs it. The Express route is kept as written; `app` is a stand-in that records the
// handler so the driver can call it with a request shaped like Express's after
// `express.json()` (`req.body` is the parsed JSON, `req.headers` lower-case).
const app = {
  routes: {},
  post(path, handler) {
    this.routes[path] = handler;
  },
};
// ---- seed 001 snippet begins ----
import crypto from 'crypto';
function verifyWebhook(payload, signature, secret) {
const expected = crypto
.createHmac('sha256', secret)
.update(payload)
.digest('hex');
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expected)
);
}
// En tu endpoint
app.post('/webhook', (req, res) => {
const signature = req.headers['x-webhook-signature'];
const isValid = verifyWebhook(
JSON.stringify(req.body),
signature,
process.env.WEBHOOK_SECRET
);
if (!isValid) {
return res.status(401).send('Invalid signature');
}
// Procesar webhook...
res.status(200).send('OK');
});
// ---- seed 001 snippet ends ----
export { app, verifyWebhook };
