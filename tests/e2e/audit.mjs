// Runs the GraphQL-over-HTTP audits of `graphql-http` (serverAudits) against a running
// server and prints one JSON line per audit: {"id", "name", "status"}, plus for an audit
// that is not ok the reason and the response's status, content type and body.
// Usage: node audit.mjs http://127.0.0.1:PORT/graphql
import { serverAudits } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs <graphql url>");
  process.exit(2);
}

for (const audit of serverAudits({ url })) {
  // fn() resolves to the audit's result; it throws only on a fatal error (exit 1).
  const result = await audit.fn();
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") {
    line.reason = result.reason;
    line.httpStatus = result.response.status;
    line.contentType = result.response.headers.get("content-type");
    line.body = (await result.response.text().catch((err) => `<${err}>`)).slice(0, 500);
  }
  console.log(JSON.stringify(line));
}
