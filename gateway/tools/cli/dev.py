"""Commands for development: demo data, tokens, the exported SDL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gateway.db import migrate
from gateway.tools.cli.common import DataDir, app, database, fail, load_settings, out, run_db
from gateway.tools.embedded import jwt_secret


@app.command("seed-demo")
def seed_demo(
    scale: Annotated[int, typer.Option(min=1, max=1000, help="Size multiplier.")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Load deterministic demo data (French PLU cities, zones, documents, v1 and v2 chats)."""
    from gateway.tools import demo

    settings = load_settings(data_dir)
    with database(settings) as (_, owner_url):
        run_db(migrate.upgrade, owner_url, "head", settings.authenticator_password)
        if run_db(asyncio.run, demo.demo_loaded(owner_url)):
            fail(
                "demo data is already loaded in this database (it is loaded once; for a fresh "
                "copy use another --data-dir or DATABASE_URL)"
            )
        summary = run_db(
            asyncio.run,
            demo.seed_demo(
                owner_url, scale=scale, progress=lambda t, n: out.print(f"  {t}: {n} rows")
            ),
        )
        out.print(f"demo data loaded in {summary.seconds:.1f}s")


@app.command("token")
def token(
    user: Annotated[str, typer.Option("--user", help="The user's UUID (the token's sub).")],
    role: Annotated[str, typer.Option(help="authenticated or service_role.")] = "authenticated",
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
    data_dir: DataDir = None,
) -> None:
    """Print a signed JWT (with JWT_SECRET, or the embedded data dir's secret)."""
    from gateway.auth import issue_token

    settings = load_settings(data_dir)
    if role not in ("authenticated", "service_role"):
        fail("--role must be authenticated or service_role")
    secret = settings.jwt_secret
    if secret is None:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"data dir {settings.data_dir} cannot be created: {exc.strerror}")
        secret = jwt_secret(settings.data_dir)
    from dataclasses import replace

    try:
        out.print(
            issue_token(replace(settings, jwt_secret=secret), user, role=role, ttl_s=ttl),
            soft_wrap=True,
        )
    except ValueError:
        fail(f"--user must be a UUID, got {user!r}")


@app.command("export-schema")
def export_schema(
    path: Annotated[Path, typer.Option(help="Where the SDL lives.")] = Path("schema.graphql"),
    check: Annotated[bool, typer.Option("--check", help="Fail when the file differs.")] = False,
) -> None:
    """Write the GraphQL SDL exported from the code (or check the checked-in copy)."""
    from schema import schema_sdl

    sdl = schema_sdl()
    if check:
        if not path.exists():
            fail(f"{path} not found; run it from the checkout, or give --path")
        current = path.read_text()
        if current != sdl:
            fail(f"{path} differs from the schema in the code; run `mwplu-gateway export-schema`")
        out.print(f"{path} is up to date")
        return
    path.write_text(sdl)
    out.print(f"wrote {path}")


@app.command("schema-changes")
def schema_changes(
    base: Annotated[
        str | None, typer.Option(help="The release to compare with (default: the last tag).")
    ] = None,
    changelog: Annotated[Path, typer.Option(help="Where breaking changes are listed.")] = Path(
        "CHANGELOG.md"
    ),
) -> None:
    """Fail on a breaking change of the schema since the last release that CHANGELOG.md does
    not list (CI runs it)."""
    from gateway.tools import schema_changes as changes
    from schema import schema_sdl

    repo = Path.cwd()
    ref = base or changes.last_release(repo)
    if ref is None:
        out.print("no release tag yet: nothing to compare with")
        return
    try:
        old = changes.released_sdl(repo, ref)
    except LookupError as exc:
        fail(str(exc))
    listed = changelog.read_text() if changelog.exists() else ""
    found = changes.compare(old, schema_sdl(), listed)
    for description in found.dangerous:
        out.print(f"dangerous (clients may notice): {description}", highlight=False)
    for description in found.listed:
        out.print(f"breaking, listed in {changelog}: {description}", highlight=False)
    if found.unlisted:
        fail(
            f"{len(found.unlisted)} breaking change(s) since {ref} not listed in {changelog}: "
            + "; ".join(found.unlisted)
        )
    out.print(f"no unlisted breaking change since {ref}")


@app.command("trusted-documents")
def trusted_documents(
    folder: Annotated[Path, typer.Argument(help="A folder of .graphql files, one document each.")],
    output: Annotated[Path, typer.Option(help="The manifest to write.")] = Path(
        "trusted-documents.json"
    ),
) -> None:
    """Build the trusted documents manifest ({sha256: document}) for GATEWAY_TRUSTED_DOCUMENTS:
    each document is checked against the schema first."""
    import orjson
    from graphql import GraphQLError, parse, validate

    from gateway.http.persisted import sha256_hex
    from schema import build_schema

    files = sorted(folder.rglob("*.graphql")) if folder.is_dir() else []
    if not files:
        fail(f"no .graphql file in {folder}")
    graph = build_schema()._schema
    manifest: dict[str, str] = {}
    for file in files:
        document = file.read_text()
        try:
            errors = validate(graph, parse(document))
        except GraphQLError as exc:
            errors = [exc]
        if errors:
            fail(f"{file}: {errors[0].message}")
        manifest[sha256_hex(document)] = document
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    output.write_bytes(orjson.dumps(manifest, option=options) + b"\n")
    out.print(f"wrote {output} ({len(manifest)} documents)", highlight=False, soft_wrap=True)
