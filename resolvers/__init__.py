"""What root fields and mutations do beyond reading declared fields: argument decoding (global
ids, filters), the migration mutations and the computed reports. Plain functions over the
request's context and the store; they return plain data, never graph types."""
