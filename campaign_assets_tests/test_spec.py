from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from campaign_assets.spec import (
    SpecError,
    load_spec,
    parse_spec,
    scan_campaigns,
    spec_hash,
)

from .conftest import EXAMPLES, SEED


def seed_data() -> dict:
    return yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())


def errors_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data), "bad.yaml")
    assert "bad.yaml" in str(info.value)
    return info.value.errors


def test_examples_are_valid_and_the_seed_is_the_seed_workload() -> None:
    found = scan_campaigns(EXAMPLES)
    assert len(found) >= 3 and all(f.error is None for f in found)
    seed = load_spec(EXAMPLES / f"{SEED}.yaml")
    assert len(seed.vectors) == 3 and all(len(v.content_types) == 3 for v in seed.vectors)
    assert len(seed.creative_sizes) == 4
    assert len(seed.launch_tasks()) == 13
    assert len(seed.dsp_channels) == 2


def test_default_tasks_are_dated_from_the_flight() -> None:
    seed = load_spec(EXAMPLES / f"{SEED}.yaml")
    tasks = {t.name: t for t in seed.launch_tasks()}
    assert tasks["Launch"].due_on == seed.flight.start
    assert tasks["Kickoff meeting"].due_on == seed.flight.start - dt.timedelta(days=42)
    assert len({t.key for t in tasks.values()}) == 13


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["channels"][0].update(share=0.5), "channels", "sum to"),
        (lambda d: d.update(flight={"start": "2027-03-01", "end": "2027-02-01"}), "flight", "before start"),
        (lambda d: d.update(id="../../etc/passwd"), "id", "pattern"),
        (lambda d: d.update(budgett=5), "budgett", "unknown field"),
        (lambda d: d["brand"].update(colour="#fff"), "brand.colour", "unknown field"),
        (lambda d: d.pop("name"), "name", "required"),
        (lambda d: d.update(creative_sizes=["300x250", "0x90"]), "creative_sizes", "impossible"),
        (lambda d: d.update(creative_sizes=["banner"]), "creative_sizes", "WIDTHxHEIGHT"),
        (lambda d: d["vectors"][0].update(content_types=["tweet"]), "vectors[0].content_types[0]", "Input should be"),
        (lambda d: d.update(tasks=[{"name": "A", "offset_days": "soon"}]), "tasks[0].offset_days", "integer"),
    ],
)
def test_invalid_specs_name_the_field_and_the_reason(mutate, field: str, reason: str) -> None:
    data = seed_data()
    mutate(data)
    errors = errors_of(data)
    assert any(path == field and reason.lower() in msg.lower() for path, msg in errors), errors


def test_truncated_file_is_refused_with_its_name(tmp_path: Path) -> None:
    text = (EXAMPLES / f"{SEED}.yaml").read_text()
    path = tmp_path / f"{SEED}.yaml"
    path.write_text(text[: len(text) // 3] + "\n  - {name: disp")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other-name.yaml"
    path.write_text((EXAMPLES / f"{SEED}.yaml").read_text())
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.errors[0][0] == "id"


def test_hash_ignores_formatting_but_not_content() -> None:
    data = seed_data()
    a = parse_spec(yaml.safe_dump(data))
    b = parse_spec("# a comment\n" + yaml.safe_dump(data, default_flow_style=True))
    assert spec_hash(a) == spec_hash(b)
    data["creative_sizes"] = ["300x250"]
    assert spec_hash(parse_spec(yaml.safe_dump(data))) != spec_hash(a)


def test_fields_left_at_their_default_do_not_change_the_hash() -> None:
    """A version that adds an optional section leaves unchanged specs' hashes
    (and so their runs) alone; using the section changes the hash."""
    from campaign_assets.spec import spec_hash

    spec = load_spec(EXAMPLES / "q4-product-launch.yaml")
    assert spec.research is None and spec.language == "en"
    assert spec_hash(spec.model_copy(update={"language": "en"})) == spec_hash(spec)
    assert spec_hash(spec.model_copy(update={"language": "de"})) != spec_hash(spec)
