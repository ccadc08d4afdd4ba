"""Output: what a run writes (sink, journal, image files, lock) and reads back (results, status)."""
