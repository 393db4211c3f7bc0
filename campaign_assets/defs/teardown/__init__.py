"""Teardown: the job that deletes what the ledger says a campaign created."""
