"""The collector is paused only for the call, and a caller's own setting survives it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from depmirror.gc_pause import paused_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@paused_gc()
def _seen_inside() -> bool:
    return gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_paused_inside_and_enabled_again_after() -> None:
    gc.enable()
    assert _seen_inside() is False
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_enabled_again_after_an_exception() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("planning failed")
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_a_caller_that_disabled_collection_keeps_it_disabled() -> None:
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()
