"""ZoningById: zonings rows by id (None where absent or invisible)."""

from loaders.shared import rows_by_id

ZoningById = rows_by_id("zonings")
