"""The runner's batch gate: the rollbacks of one dispatch pass go to the action as one batch."""

from __future__ import annotations

import asyncio

from depmirror.runner.actions import ActionRequest, ActionResult, BatchGate, BatchItems


def _request(dependency: str) -> ActionRequest:
    return ActionRequest(
        action_id=f"id-{dependency}",
        kind="rollback",
        dependency=dependency,
        instance=f"{dependency}@vm-a1",
        trigger={},
        store_url="sqlite:///unused",
    )


async def _started(external_id: str) -> None:
    return None


class Recorder:
    """The action's side of the gate: which batches it was handed."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def __call__(self, items: BatchItems) -> list[ActionResult]:
        self.batches.append([request.dependency for request, _ in items])
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("the fast path crashed")
        return [ActionResult(outcome="succeeded", target=f"{r.dependency}@vm-b1") for r, _ in items]


def test_the_rollbacks_of_one_pass_run_as_one_batch_once_every_dependency_submitted_or_left() -> None:
    asyncio.run(_the_rollbacks_of_one_pass_run_as_one_batch_once_every_dependency_submitted_or_left())


async def _the_rollbacks_of_one_pass_run_as_one_batch_once_every_dependency_submitted_or_left() -> None:
    action = Recorder()
    gate = BatchGate(action)
    for dependency in ("alpha", "beta", "gamma"):
        gate.expect(dependency)
    gate.seal()
    alpha = asyncio.create_task(gate.submit(_request("alpha"), _started))
    beta = asyncio.create_task(gate.submit(_request("beta"), _started))
    await asyncio.sleep(0.01)
    assert action.batches == []  # gamma has not decided yet
    gate.leave("gamma")  # it settled otherwise (refused, ignored, ...)

    results = await asyncio.wait_for(asyncio.gather(alpha, beta), 2)

    assert action.batches == [["alpha", "beta"]]
    assert [r.target for r in results] == ["alpha@vm-b1", "beta@vm-b1"]


def test_a_rollback_after_the_flush_runs_as_a_batch_of_one() -> None:
    asyncio.run(_a_rollback_after_the_flush_runs_as_a_batch_of_one())


async def _a_rollback_after_the_flush_runs_as_a_batch_of_one() -> None:
    action = Recorder()
    gate = BatchGate(action)
    gate.expect("alpha")
    gate.expect("beta")
    gate.seal()
    first = asyncio.create_task(gate.submit(_request("alpha"), _started))
    gate.leave("beta")
    await asyncio.wait_for(first, 2)

    late = await asyncio.wait_for(gate.submit(_request("beta"), _started), 2)

    assert action.batches == [["alpha"], ["beta"]]
    assert late.outcome == "succeeded"


def test_a_crashed_batch_reaches_every_member() -> None:
    asyncio.run(_a_crashed_batch_reaches_every_member())


async def _a_crashed_batch_reaches_every_member() -> None:
    gate = BatchGate(Recorder(fail=True))
    gate.expect("alpha")
    gate.expect("beta")
    gate.seal()
    submitted = [asyncio.create_task(gate.submit(_request(d), _started)) for d in ("alpha", "beta")]

    done = await asyncio.wait_for(asyncio.gather(*submitted, return_exceptions=True), 2)

    assert [type(e) for e in done] == [RuntimeError, RuntimeError]
