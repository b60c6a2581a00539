"""What the runner asks an action to do, what it gets back, and the interface every action implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ActionKind = Literal["rollback", "failback"]
Started = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action_id: str
    kind: ActionKind
    dependency: str
    instance: str
    trigger: dict[str, Any]
    store_url: str
    # Healthy targets the runner's re-check found; empty means the checker could not list them and the
    # playbook picks (it never picks an unhealthy or unknown target either).
    candidates: tuple[str, ...] = ()
    retry_of: str | None = None
    # Whether this runner still holds the dependency's lease: actions that can stop between steps ask it
    # right before each one (the fast path before promoting and routing). Never passed to a playbook.
    fence: Callable[[], bool] | None = field(default=None, compare=False)

    def extra_vars(self) -> dict[str, Any]:
        """The playbook / job template inputs (names documented in docs/runner.md)."""
        variables: dict[str, Any] = {
            "depmirror_dependency": self.dependency,
            "depmirror_trigger": self.trigger,
            "depmirror_action_id": self.action_id,
            "depmirror_store": self.store_url,
        }
        if self.kind == "rollback":
            variables["depmirror_failed_instance"] = self.instance
        else:
            variables["depmirror_recovered_instance"] = self.instance
        if self.candidates:
            variables["depmirror_candidates"] = list(self.candidates)
        if self.retry_of:
            variables["depmirror_retry_of"] = self.retry_of
        return variables


@dataclass(frozen=True, slots=True)
class ActionResult:
    """`error`: the action could not start (nothing ran, nothing changed): no cooldown follows it."""

    outcome: Literal["succeeded", "failed", "error"]
    detail: str = ""
    target: str | None = None
    external_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Action(Protocol):
    name: str

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        """Run to the end. Call `started(external_id)` as soon as there is a handle worth remembering."""
        ...

    async def follow(self, external_id: str) -> ActionResult | None:
        """Wait for an action a previous runner process started; None if it cannot be followed."""
        ...

    async def problems(self) -> list[str]:
        """Why the action could not start now (for /readyz); empty when it can. Answers in well under 1 s."""
        ...
