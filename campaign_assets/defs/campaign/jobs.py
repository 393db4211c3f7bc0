"""The job that materializes one campaign's whole graph (the sensor and ``campaign-assets launch`` run it)."""

import dagster as dg

from campaign_assets.settings import APPROVAL_GROUP, CAMPAIGN_JOB, DISTRIBUTION_GROUP

campaign_job = dg.define_asset_job(
    CAMPAIGN_JOB,
    selection=dg.AssetSelection.groups(
        "campaign_inputs", "planning", "creative", "content", "activation", "reporting", APPROVAL_GROUP, DISTRIBUTION_GROUP
    ),
    description="Materialize every artifact of one campaign, from spec to summary report.",
)


def drafting_selection(job: dg.JobDefinition) -> list[dg.AssetKey]:
    """The campaign job's assets without review, approval and distribution:
    the whole graph of a campaign whose spec has neither ``reviewers`` nor
    ``distribution`` (``campaign-assets launch`` and the spec sensor run this)."""
    graph = job.asset_layer.asset_graph
    return sorted(
        (
            key
            for key in graph.get_all_asset_keys()
            if graph.get(key).is_materializable and graph.get(key).group_name not in (APPROVAL_GROUP, DISTRIBUTION_GROUP)
        ),
        key=lambda k: k.to_user_string(),
    )
