// PostGraphile 5 over the v2 (and v1) tables, the comparator of ``python -m bench.graph``.
//
// The bench copies this file into the directory where it ran ``npm install postgraphile@5
// node@22`` and starts it with that Node 22. Environment: DATABASE_URL (the ``authenticator``
// role over the embedded server's Unix socket), PORT. Every request runs as ``service_role``
// through pgSettings (a transaction with ``set_config('role', …)``), as the gateway does.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const port = Number(process.env.PORT);
const pgSettings = { role: "service_role" };

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
      pgSettingsForIntrospection: pgSettings,
      poolConfig: { max: Number(process.env.POOL_SIZE || 10) },
      pubsub: false,
    }),
  ],
  grafast: {
    explain: false,
    context() {
      return { pgSettings };
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
