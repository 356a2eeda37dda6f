"""Prefect flows: the pipeline flow, its schedule and run summaries."""
