"""creatives: one display ad per size, on an image-generation background, as a Canva design.

Made: one ledger item ``creative:<size>`` (canva) per size: a background
(images), composed to the exact size (``logic/render.compose_creative``),
written to ``creatives/<size>.png``, uploaded to Canva and made a design.

Torn down: the Canva asset (by the ``asset_id`` the row recorded, else found
by marker; deleting it deletes its design) and ``creatives/<size>.png``. A
creative made locally (``fallback``) is deleted through the local backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.prompts import headline
from campaign_assets.logic.render import compose_creative
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.images import ImagesResource
from campaign_assets.services.local import inside, unlink, write_bytes
from campaign_assets.services.protocols import Canva, Images
from campaign_assets.spec import CampaignSpec, parse_size
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, clients, deleted_by_id, scope_of

ASSET = "creatives"
PREFIX = "creative:"


def image_prompt(spec: CampaignSpec) -> str:
    return (
        f"Abstract, text-free background for a {spec.objective} display ad by {spec.brand.name}: "
        f"{spec.audience}. Dominant colour {spec.brand.primary_color}, calm, modern, room for a headline."
    )


def png_path(folder: Path, size: str) -> Path:
    return folder / "creatives" / f"{size}.png"


async def make_creatives(
    spec: CampaignSpec, images: ImagesResource, canva: CanvaResource, ledger: Ledger, out: Path
) -> Outcome:
    line = headline(spec)
    prompt = image_prompt(spec)

    def producer(painter: Images, designer: Canva) -> Callable[..., Awaitable[VendorRef]]:
        async def produce(item: Item, attempt: Attempt, replace: str | None = None) -> VendorRef:
            size = item.content["size"]
            width, height = parse_size(size)
            path = png_path(out, size)
            found = await attempt.adopted(lambda marker: designer.find_design(marker=marker))
            if found is not None and path.exists():
                design, asset_id = found, ""
            else:
                background = await painter.generate(prompt, color=spec.brand.primary_color)
                png = compose_creative(background, (width, height), spec.brand.primary_color, line, spec.brand.name)
                write_bytes(path, png)
                asset = await attempt.adopt_or_create(
                    lambda marker: designer.find_asset(marker=marker),
                    lambda marker: designer.upload_asset(f"{spec.id}-{size}.png", png, marker=marker),
                )
                design = await designer.create_design(
                    f"{spec.name} {size} {attempt.marker}", width, height, asset.asset_id, marker=attempt.marker
                )
                asset_id = asset.asset_id
                if replace:
                    await designer.delete_asset(replace)
            data = dict(size=size, width=width, height=height, path=str(path), asset_id=asset_id, view_url=design.view_url)
            return VendorRef(design.design_id, design.edit_url, data)

        return produce

    async with clients(out, images, canva) as (live, local):
        produce = producer(*live)

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            return await produce(item, attempt)

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await produce(item, Attempt(attempt.marker, recovering=False), ref.data.get("asset_id") or None)

        items = [
            Item(
                f"{PREFIX}{size}",
                {"size": size, "headline": line, "color": spec.brand.primary_color, "brand": spec.brand.name, "prompt": prompt},
            )
            for size in spec.creative_sizes
        ]
        report = await run_items(
            ledger, scope_of(spec, ASSET), "canva", items,
            create=create, update=update, fallback=local and producer(*local),
        )
    value = [dict(r.ref.data, design_id=r.ref.vendor_id, edit_url=r.ref.url) for r in report.succeeded if r.ref]
    return Outcome(value, [report], live)


async def _delete_creative(canva: Canva, row: LedgerRow, ctx: Context) -> bool:
    asset_id = row.payload.get("asset_id") or getattr(await canva.find_asset(marker=row.marker), "asset_id", None)
    deleted = await deleted_by_id(canva.delete_asset, asset_id)
    size = row.payload.get("size") or row.item_key.removeprefix(PREFIX)
    return unlink(inside(ctx.folder, "creatives", f"{size}.png")) or deleted


STAGES = (Stage(ASSET, ASSET, (Rule("canva", _delete_creative, PREFIX),)),)
