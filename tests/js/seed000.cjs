// Seed 000's signature verification snippet (shared/seeds/000_*.txt, "Verificación de
// Firmas"), copied verbatim between the markers. Only the export below is added.
// ---- seed 000 snippet begins ----
const crypto = require('crypto');
function verifySignature(payload, signature, secret, timestamp) {
const message = `${timestamp}.${JSON.stringify(payload)}`;
const expectedSig = crypto
.createHmac('sha256', secret)
.update(message)
.digest('hex');
return `v1=${expectedSig}` === signature;
}
// ---- seed 000 snippet ends ----
module.exports = { verifySignature };
