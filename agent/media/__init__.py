"""Fan-out: one encoded stream to many peers."""
