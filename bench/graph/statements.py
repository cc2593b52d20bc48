"""The gateway's SQL statements per request, counted in-process through the ASGI app, and
(``--explain``) their plans."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL

from bench.graph.context import Context
from bench.graph.servers import JWT_SECRET
from bench.graph.workloads import Request, Workload, graphql_body, reference_query


async def count_statements(ctx: Context, workloads: list[Workload], auth_url: URL) -> None:
    """SQL statements per request of each gateway workload, through the ASGI app in-process."""
    from gateway.db import StatementCounter, create_engine
    from gateway.http.app import create_app
    from gateway.settings import Settings

    settings = Settings(jwt_secret=JWT_SECRET, env="test")
    engine = create_engine(auth_url, settings, pool_size=2)
    counter = StatementCounter().attach(engine)
    app = create_app(settings, engine=engine)
    headers = {"authorization": f"Bearer {ctx.token}", "content-type": "application/json"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:

            async def reads(request: Request) -> tuple[int, int]:
                counter.reset()
                own = {**headers, "authorization": f"Bearer {request.token or ctx.token}"}
                response = await client.post(request.path, content=request.body, headers=own)
                payload = response.json()
                if response.status_code != 200 or payload.get("errors"):
                    raise AssertionError(f"{request.body[:80]!r}: {payload.get('errors')}")
                return counter.reads, counter.total

            for w in workloads:
                if "gateway" not in w.requests:
                    continue
                r, total = await reads(w.requests["gateway"][0])
                note = f"{r} (+{total - r} setup)"
                if w.key == "R2":  # the statement count must not depend on the page size
                    r10, _ = await reads(
                        Request("/graphql", graphql_body(reference_query(), {"first": 10}))
                    )
                    note += f"; {r10} at first:10"
                ctx.statements[(w.key, "gateway")] = note
                if "raw limit" in w.requests:
                    ctx.statements[(w.key, "raw limit")] = w.raw_statements
                if "postgraphile" in w.requests:
                    ctx.statements[(w.key, "postgraphile")] = "1 (+tx, set_config)"
            if ctx.args.explain:
                explain_dir = Path(ctx.args.explain_dir) if ctx.args.explain_dir else None
                await explain_workloads(workloads, client, headers, engine, settings, explain_dir)
    finally:
        counter.detach(engine)
        await engine.dispose()


# Plan nodes worth a line in the summary: how each table is read.
SCAN = re.compile(
    r"(Seq Scan|Parallel Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)"
    r"(?: Backward)?(?: using (\S+))? on (\S+)"
)


ACTUAL = re.compile(r"actual time=[\d.]+\.\.([\d.]+) rows=[\d.]+ loops=(\d+)")


def node_ms(line: str) -> float:
    """Total time of an ``EXPLAIN ANALYZE`` plan node (its subtree included): end * loops."""
    match = ACTUAL.search(line)
    return float(match.group(1)) * int(match.group(2)) if match else 0.0


async def explain_workloads(
    workloads: list[Workload],
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: Any,
    settings: Any,
    explain_dir: Path | None,
) -> None:
    """``EXPLAIN ANALYZE`` of every read statement the gateway sends for R1, R2 and R4, as the
    request's own viewer in a rolled-back transaction: how each table is read, and the
    execution time."""
    from gateway.auth import viewer_from_header
    from gateway.db import StatementCounter, begin_as, release_idle
    from gateway.db.connection import driver

    for w in workloads:
        if w.key not in ("R1", "R2", "R4") or "gateway" not in w.requests:
            continue
        request = w.requests["gateway"][0]
        own = {**headers, **({"authorization": f"Bearer {request.token}"} if request.token else {})}
        viewer = viewer_from_header(own["authorization"], settings)
        captured = StatementCounter().attach(engine)
        try:
            await client.post(request.path, content=request.body, headers=own)
        finally:
            captured.detach(engine)
        reads = captured.read_statements()
        print(f"\nEXPLAIN {w.key}: {len(reads)} read statement(s)")
        await release_idle(engine)  # the request kept its connection: the pool's again
        for statement, args in reads:
            async with engine.connect() as conn:
                raw = driver(conn)
                try:
                    await raw.execute(begin_as(viewer, settings))
                    explained = await raw.fetch(
                        "EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) " + statement, *args
                    )
                finally:
                    await raw.execute("ROLLBACK")
                lines = [row[0] for row in explained]
            if explain_dir is not None:
                # A diagnostic run, nothing else on the loop: the file write below blocks too.
                explain_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
                with (explain_dir / f"{w.key}.txt").open("a") as out:
                    out.write(statement + "\n\n" + "\n".join(lines) + "\n\n")
            scans: dict[str, int] = {}
            for line in lines:
                match = SCAN.search(line)
                if match:
                    kind, index, table = match.groups()
                    key = f"{kind} on {table}" + (f" using {index}" if index else "")
                    scans[key] = scans.get(key, 0) + 1
            timing = [ln.strip() for ln in lines if ln.strip().startswith("Execution Time")]
            print(f"  {' '.join(statement.split())[:100]}…")
            for key, count in sorted(scans.items()):
                print(f"    {key}" + (f" ({count} plan nodes)" if count > 1 else ""))
            print(f"    {timing[0] if timing else ''}; the costliest plan nodes:")
            for spent, line in sorted(
                ((node_ms(ln), ln) for ln in lines if node_ms(ln) > 0), reverse=True
            )[:6]:
                print(f"    {spent:8.1f} ms  {' '.join(line.split())[:110]}")
