"""Per-request DataLoaders of the read engine.

One loader of rows by id per request (``RowsById``), built on first use by the engine's run
of an operation: aiodataloader binds the running loop, and a per-request cache never serves one
viewer's rows to another. It reads the columns the operation selects of each type, for every
id a step of the engine needs, in one statement per type (the small ones sharing one).
"""
