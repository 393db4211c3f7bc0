"""The campaign graph: its assets, their checks, and the job that materializes them."""
