"""HTTP: health, readiness, metrics, the status API and page."""
