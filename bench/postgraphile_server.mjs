// PostGraphile 5 over the v2 (and v1) tables, the comparator of ``python -m bench.graph``.
//
// The bench copies this file into the directory where it ran ``npm install postgraphile@5
// node@22`` and starts it with that Node 22. Environment: DATABASE_URL (the ``authenticator``
// role over the embedded server's Unix socket), PORT, JWT_SECRET. Every request runs as an RLS
// deployment runs it, as the gateway does: its bearer token (HS256) verified, then its role and
// claims set for the request's transaction through pgSettings (``set_config('role', …)`` and
// ``request.jwt.claims``); no valid token is ``anon``.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const port = Number(process.env.PORT);
const secret = process.env.JWT_SECRET;
const anon = { role: "anon", "request.jwt.claims": JSON.stringify({ role: "anon" }) };

// The request's settings from its bearer token: role and claims when the HS256 signature and
// the expiry hold, else those of an anonymous viewer.
function settingsOf(authorization) {
  const token = /^Bearer (.+)$/.exec(authorization || "")?.[1];
  const [header, payload, signature] = token ? token.split(".") : [];
  if (!signature) return anon;
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return anon;
  const json = Buffer.from(payload, "base64url").toString();
  const claims = JSON.parse(json);
  if (!claims.exp || claims.exp * 1000 < Date.now()) return anon;
  return { role: claims.role, "request.jwt.claims": json };
}

const preset = {
  extends: [PostGraphileAmberPreset],
  // Let the benchmark order messages by (created_at, id) as the gateway does, whatever
  // indexes PostGraphile would otherwise require for orderBy.
  disablePlugins: ["PgIndexBehaviorsPlugin"],
  // NULLs last in every ordering, as the gateway orders (DESIGN §7); it also lets
  // `LAST_MESSAGE_AT_DESC` use the listing index (last_message_at DESC NULLS LAST, id DESC)
  // instead of sorting every conversation.
  schema: { pgOrderByNullsLast: true },
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      pgSettingsForIntrospection: { role: "service_role" },
      poolConfig: { max: Number(process.env.POOL_SIZE || 10) },
      pubsub: false,
    }),
  ],
  grafast: {
    explain: false,
    context(requestContext) {
      return { pgSettings: settingsOf(requestContext.node?.req?.headers?.authorization) };
    },
  },
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false, maxRequestLength: 100000 },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
await serv.addTo(server);
// Build the schema before accepting traffic, so that the first request is not the one paying.
await pgl.getSchemaResult();
server.listen(port, "127.0.0.1", () => console.log(`postgraphile listening on ${port}`));

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    pgl.release().finally(() => process.exit(0));
  });
}
