"""TypologyById: typologies rows by id (None where absent or invisible)."""

from loaders.shared import rows_by_id

TypologyById = rows_by_id("typologies")
