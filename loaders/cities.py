"""CityById: cities rows by id (None where absent or invisible)."""

from loaders.shared import rows_by_id

CityById = rows_by_id("cities")
