"""Per-batch judgement: deadline and freshness tracks, functions of the runs they know."""
