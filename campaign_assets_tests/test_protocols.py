"""Every local and HTTP client class satisfies its service's Protocol: same
async methods, same parameters (names, kinds, defaults)."""

import inspect

import pytest

from campaign_assets.services import protocols
from campaign_assets.services.asana import HttpAsana, LocalAsana
from campaign_assets.services.buffer import HttpSocial, LocalSocial
from campaign_assets.services.canva import HttpCanva, LocalCanva
from campaign_assets.services.docs import HttpDocs, LocalDocs
from campaign_assets.services.amazon_dsp import HttpAmazonDSP
from campaign_assets.services.dsp import LocalDSP
from campaign_assets.services.dsp_reporting import (
    HttpAmazonReporting,
    HttpDV360Reporting,
    HttpTradeDeskReporting,
    LocalDSPReporting,
)
from campaign_assets.services.github_pages import HttpPages, LocalPages
from campaign_assets.services.dv360 import HttpDV360
from campaign_assets.services.trade_desk import HttpTradeDesk
from campaign_assets.services.images import HttpImages, LocalImages
from campaign_assets.services.llm import HttpLLM, LocalLLM
from campaign_assets.services.sendgrid import HttpEmail, LocalEmail
from campaign_assets.services.sheets import HttpSheets, LocalSheets
from campaign_assets.services.slack import HttpSlack, LocalSlack

CLIENTS = [
    (protocols.LLM, LocalLLM), (protocols.LLM, HttpLLM),
    (protocols.Images, LocalImages), (protocols.Images, HttpImages),
    (protocols.Docs, LocalDocs), (protocols.Docs, HttpDocs),
    (protocols.Sheets, LocalSheets), (protocols.Sheets, HttpSheets),
    (protocols.Asana, LocalAsana), (protocols.Asana, HttpAsana),
    (protocols.Canva, LocalCanva), (protocols.Canva, HttpCanva),
    (protocols.DSP, LocalDSP), (protocols.DSP, HttpAmazonDSP), (protocols.DSP, HttpTradeDesk), (protocols.DSP, HttpDV360),
    (protocols.DSPReporting, LocalDSPReporting), (protocols.DSPReporting, HttpAmazonReporting),
    (protocols.DSPReporting, HttpTradeDeskReporting), (protocols.DSPReporting, HttpDV360Reporting),
    (protocols.Slack, LocalSlack), (protocols.Slack, HttpSlack),
    (protocols.Email, LocalEmail), (protocols.Email, HttpEmail),
    (protocols.Social, LocalSocial), (protocols.Social, HttpSocial),
    (protocols.Pages, LocalPages), (protocols.Pages, HttpPages),
]


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "call"
    }


def _shape(sig: inspect.Signature) -> list[tuple[str, object, bool]]:
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in sig.parameters.values()]


@pytest.mark.parametrize(("protocol", "cls"), CLIENTS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_client_satisfies_its_protocol(protocol: type, cls: type) -> None:
    wanted = _methods(protocol)
    have = _methods(cls)
    assert wanted, protocol
    for name, sig in wanted.items():
        assert name in have, f"{cls.__name__} lacks {name}"
        assert _shape(have[name]) == _shape(sig), f"{cls.__name__}.{name}{have[name]} != {protocol.__name__}.{name}{sig}"
        assert inspect.iscoroutinefunction(getattr(cls, name))
    assert cls.backend in ("local", "http")
    for name, fn in inspect.getmembers(protocol, inspect.isfunction):  # plain methods (Pages.page_url)
        if not name.startswith("_") and not inspect.iscoroutinefunction(fn):
            assert _shape(inspect.signature(getattr(cls, name))) == _shape(inspect.signature(fn)), f"{cls.__name__}.{name}"
