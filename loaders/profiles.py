"""ProfileById: profiles rows by id (None where absent or invisible)."""

from loaders.shared import rows_by_id

ProfileById = rows_by_id("profiles")
