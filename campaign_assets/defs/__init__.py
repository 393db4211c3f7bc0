"""Dagster objects by domain, loaded by ``dg.load_from_defs_folder`` (see ``campaign_assets.definitions``)."""
