"""The sandbox's live state, held by one app instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.faults import FaultInjector
from campaign_assets.sandbox.limits import Limiter
from campaign_assets.sandbox.state import IdFactory, SandboxState


@dataclass(frozen=True)
class Generation:
    """Config, state, limiter and fault injector that belong together.

    A request takes the current generation when it starts and finishes against it,
    so a reset or a config change mid-request never mixes old and new.
    """

    config: SandboxConfig
    state: SandboxState
    limiter: Limiter
    faults: FaultInjector

    @classmethod
    def fresh(cls, config: SandboxConfig) -> Generation:
        return cls(config, SandboxState(), Limiter(config), FaultInjector(config))


class Runtime:
    """Everything one sandbox app holds: the current generation, the startup config, the id factory."""

    def __init__(self, config: SandboxConfig) -> None:
        self.initial_config = config
        self.ids = IdFactory()  # survives resets, so an id is never handed out twice
        self.current = Generation.fresh(config)

    def reset(self, config: SandboxConfig) -> None:
        """Forget every object, call and queued fault, and switch to `config`."""
        self.current = Generation.fresh(config)

    def reconfigure(self, config: SandboxConfig) -> None:
        """Switch to `config`, keeping objects, calls and queued faults; limits and the fault RNG restart."""
        self.current = Generation(
            config, self.current.state, Limiter(config), self.current.faults.with_config(config)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.current.config.model_dump(mode="json"),
            **self.current.state.to_json(),
            "queued_faults": self.current.faults.queued(),
        }
