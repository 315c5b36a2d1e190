"""The HTTP API for product backends (docs/design.md §8.6): Starlette on uvicorn, started by
``ledger serve``. ``app`` builds the application, ``batching`` queues concurrent requests and
posts them together (group commit), ``auth`` checks bearer tokens, ``openapi`` writes the OpenAPI
document from the event schemas. No module here imports a database library: every use case is a
function of ``ledger.services.serving``.
"""
