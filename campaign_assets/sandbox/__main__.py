"""``python -m campaign_assets.sandbox``: serve the vendor sandbox in the foreground."""

from campaign_assets.sandbox.server import main

raise SystemExit(main())
