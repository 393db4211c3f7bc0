"""Every resource of the code location, configured from the environment's
variable *names* (``campaign_assets.resources.build_resources``): a service
whose token variable is set speaks HTTP, the others run locally; secrets are
resolved through ``EnvVar`` at run time, never read here."""

import os

import dagster as dg

from campaign_assets.resources import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(os.environ))
