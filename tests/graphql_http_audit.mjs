// The GraphQL-over-HTTP audits of the npm package graphql-http (`serverAudits`) against a
// running gateway: every audit, MUST, SHOULD and MAY alike, one line each, then a summary line
// (JSON). Exits 1 unless every audit is `ok` (an `error` is a failed MUST, a `warn` a failed
// SHOULD, a `notice` a failed MAY: the gateway wants none of them).
//
//   node tests/graphql_http_audit.mjs http://127.0.0.1:8000/graphql <prefix>
//
// <prefix> is where graphql-http is installed (`npm install --prefix <prefix> graphql-http
// graphql`); tests/test_http_spec.py does that and runs this script.
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) {
  console.error('usage: node graphql_http_audit.mjs <url> <prefix of graphql-http>');
  process.exit(2);
}
const require = createRequire(join(prefix, 'package.json'));
const { serverAudits } = require('graphql-http');

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
// One audit at a time: each is a request or two, and the order of the lines stays stable.
for (const { id, name, fn } of serverAudits({ url })) {
  let result;
  try {
    result = await fn();
  } catch (err) {
    // Not an assertion failure: the audit itself could not run (a refused connection, ...).
    result = { id, name, status: 'error', reason: `audit crashed: ${err}` };
  }
  counts[result.status] += 1;
  let line = `${result.status.padEnd(6)} ${id} ${name}`;
  if (result.status !== 'ok') {
    line += `\n       ${result.reason}`;
    const res = result.response;
    if (res) {
      let body = '';
      try {
        body = (await res.text()).slice(0, 500);
      } catch {
        body = '(body already read)';
      }
      line += `\n       HTTP ${res.status} ${res.headers.get('content-type')}: ${body}`;
    }
  }
  console.log(line);
}
console.log(JSON.stringify({ summary: counts, total: Object.values(counts).reduce((a, b) => a + b) }));
process.exit(counts.ok === Object.values(counts).reduce((a, b) => a + b) ? 0 : 1);
