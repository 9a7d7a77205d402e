// A client written against the types openapi-typescript GENERATES from Herald's OpenAPI
// document (tests/api/openapi_tools.rs writes them to ./herald.d.ts beside this file and
// compiles both with `tsc --strict`). Every request and answer below is typed by an
// operation of the document, looked up by its operationId, so a renamed operation, a
// changed field or a wrong status code in the document fails the compile, not just the run.
//
// Run: node client.mjs <herald base URL> <admin token> <receiver URL>
// Creates a webhook to the receiver, publishes an event to it, waits for the delivery to
// succeed, and prints {"webhook", "event", "delivery", "attempts"} as JSON.

import type { operations } from "./herald";

declare const process: { argv: string[] };

type JsonBody<T> = T extends { content: { "application/json": infer B } } ? B : never;
type RequestOf<Op extends keyof operations> = operations[Op] extends {
  requestBody?: infer R;
}
  ? JsonBody<NonNullable<R>>
  : never;
type AnswerOf<
  Op extends keyof operations,
  Status extends keyof operations[Op]["responses"],
> = JsonBody<operations[Op]["responses"][Status]>;
type QueryOf<Op extends keyof operations> = operations[Op]["parameters"] extends {
  query?: infer Q;
}
  ? NonNullable<Q>
  : never;

const [base, token, receiverUrl] = process.argv.slice(2);

async function call<Answer>(
  method: string,
  path: string,
  expected: number,
  body?: unknown,
): Promise<Answer> {
  const response = await fetch(new URL(path, base), {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== expected) {
    throw new Error(`${method} ${path}: ${response.status} ${text}`);
  }
  return JSON.parse(text) as Answer;
}

function query<Op extends keyof operations>(q: QueryOf<Op>): string {
  const pairs = Object.entries(q as Record<string, unknown>).map(
    ([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`,
  );
  return pairs.length ? `?${pairs.join("&")}` : "";
}

async function main(): Promise<void> {
  const create: RequestOf<"createWebhook"> = {
    url: receiverUrl,
    events: ["order.*"],
  };
  const created = await call<AnswerOf<"createWebhook", 201>>("POST", "/api/v1/webhooks", 201, create);
  const webhookId: number = created.data.id;

  const payload: RequestOf<"publishEvent"> = { event: "order.created", order_id: 42 };
  const published = await call<AnswerOf<"publishEvent", 202>>("POST", "/api/v1/events", 202, payload);
  const eventId: string = published.data.id;

  const filter: QueryOf<"listDeliveries"> = { event_id: eventId, status: "succeeded" };
  let deliveryId: number | undefined;
  for (let i = 0; i < 100 && deliveryId === undefined; i++) {
    const page = await call<AnswerOf<"listDeliveries", 200>>(
      "GET",
      `/api/v1/deliveries${query<"listDeliveries">(filter)}`,
      200,
    );
    deliveryId = page.data.find((d) => d.endpoint_id === webhookId)?.id;
    if (deliveryId === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  if (deliveryId === undefined) throw new Error("the delivery did not succeed within 10 s");

  const delivery = await call<AnswerOf<"getDelivery", 200>>("GET", `/api/v1/deliveries/${deliveryId}`, 200);
  const attempts = delivery.data.attempt_log.map((a) => a.status_code);
  console.log(
    JSON.stringify({ webhook: webhookId, event: eventId, delivery: delivery.data.status, attempts }),
  );
}

main().catch((e: unknown) => {
  console.error(e);
  throw e;
});
