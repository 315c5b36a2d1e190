"""`ledger serve`: the HTTP API (``ledger.http``) on uvicorn."""

from __future__ import annotations

import os

import click


@click.command()
@click.option("--db", "database_url", default=None, metavar="URL",
              help="Database URL (default: the group's --database-url / LEDGER_DATABASE_URL).")
@click.option("--catalog", "catalog_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Catalog file (default: the group's --catalog / LEDGER_CATALOG).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes, each batching its own requests (PostgreSQL; SQLite takes 1).")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="File of bearer tokens, one a line (also: LEDGER_API_TOKENS, comma-separated).")
@click.option("--window-ms", default=2.0, show_default=True, type=click.FloatRange(0, 100),
              help="Group commit: how long to wait for more requests after the first (milliseconds).")
@click.option("--committers", default=1, show_default=True, type=click.IntRange(1, 16),
              help="Group-commit threads per worker, each with its own transaction (PostgreSQL; SQLite: 1).")
@click.option("--max-group", default=1000, show_default=True, type=click.IntRange(1, 1000),
              help="Group commit: events in one group at most (a request of more is a group of its own).")
@click.option("--max-body", default=4 * 1024 * 1024, show_default=True, type=click.IntRange(1024),
              help="Largest request body (bytes); larger is answered 413.")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request.")
@click.pass_obj
def serve(obj, database_url: str | None, catalog_path: str | None, host: str, port: int, workers: int,
          token_file: str | None, window_ms: float, committers: int, max_group: int, max_body: int,
          access_log: bool) -> None:
    """Serve the HTTP API: POST /v1/events, balances, usage, invoices, /healthz, /openapi.json.

    Refuses to start (exit 2) without a token; connect as the least-privilege writer role in
    production (`ledger db roles`)."""
    import uvicorn

    from ledger.http.app import CONFIG_ENV, ServeConfig, create_app
    from ledger.http.auth import TokenError, load_tokens

    url = database_url or obj.url
    catalog = catalog_path or (obj.catalog_path if os.path.isfile(obj.catalog_path) else None)
    try:
        load_tokens(token_file)
    except TokenError as exc:
        raise click.UsageError(str(exc)) from None
    if workers > 1 and url.startswith("sqlite"):
        raise click.UsageError("SQLite has one writer at a time: serve it with --workers 1 "
                               "(several workers are for PostgreSQL)")
    config = ServeConfig(url, catalog, token_file, window_ms / 1000, max_group_events=max_group, max_body=max_body,
                         committers=committers)
    try:
        checked = create_app(config)  # checks the database (at head), the catalog and the secrets before listening
    except TokenError as exc:
        raise click.UsageError(str(exc)) from None
    checked.state.ledger.engine.dispose()
    del checked  # the workers build their own
    os.environ[CONFIG_ENV] = config.to_json()
    click.echo(f"ledger serve: http://{host}:{port} ({workers} worker{'' if workers == 1 else 's'}), "
               "OpenAPI at /openapi.json", err=True)
    uvicorn.run("ledger.http.app:from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=access_log, timeout_graceful_shutdown=10)
