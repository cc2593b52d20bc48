"""Per-request DataLoaders of the read engine.

One loader per object type and request (``RowsById``), built on first use by the engine's run
of an operation: aiodataloader binds the running loop, and a per-request cache never serves one
viewer's rows to another. Each reads the columns the operation selects of its type, for every
key of a level, in one statement.
"""
