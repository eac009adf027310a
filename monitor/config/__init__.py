"""The SLA config: its model, loading with FILE:LINE:COL errors, and watching for changes."""
