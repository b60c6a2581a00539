"""Wire the runner together and run it until SIGTERM/SIGINT: store, recovery, worker, HTTP."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl

from aiohttp import web

from depmirror.rollback.switchover import FastPath
from depmirror.runner import reconcile
from depmirror.runner.actions import Action
from depmirror.runner.ansible_action import AnsibleRunnerAction
from depmirror.runner.app import build_app
from depmirror.runner.awx_action import AwxAction
from depmirror.runner.config import RunnerConfig
from depmirror.runner.fast_action import FastPathAction
from depmirror.runner.health import HealthChecker, load_health_checker
from depmirror.runner.metrics import RunnerMetrics
from depmirror.runner.store_caller import StoreCaller
from depmirror.runner.worker import Worker
from depmirror.runner.zones import zone_service
from depmirror.store.factory import open_store

log = logging.getLogger("depmirror.runner")
# On SIGTERM, running actions get this long to finish; after that the next start marks them interrupted.
DRAIN_TIMEOUT_S = 30.0


def build_action(config: RunnerConfig) -> Action | None:
    if config.mode == "shadow":
        return None
    if config.action.kind == "awx":
        assert config.action.awx is not None
        return AwxAction(config.action.awx, config.action.timeout_s)
    playbook = AnsibleRunnerAction(config.action, failback=config.policy.failback)
    if config.action.fast_path is not None:
        return FastPathAction(FastPath(config.action.fast_path), playbook)
    return playbook


def _ssl_context(config: RunnerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


async def serve(config: RunnerConfig, health: HealthChecker | None = None) -> None:
    store = open_store(config.store)
    db = StoreCaller(store)
    # The webhook gets its own connection and thread: a 202 must not queue behind the worker's writes.
    intake_store = open_store(config.store)
    intake_db = StoreCaller(intake_store)
    metrics = RunnerMetrics()
    checker = health or load_health_checker(config.health.checker, config.health.options, str(config.path))
    action = build_action(config)
    worker = Worker(config, db, action, checker, metrics)
    # Reconciliation (runner/reconcile.py), when enabled: a pass right after each switchover or failback.
    reconciler = reconcile.reconciler_for(config, wake_worker=worker.wake.set, metrics=metrics)
    if reconciler is not None:
        worker.after_action = lambda dependency: reconciler.poke(f"switchover of {dependency}")
    ready = False
    # Zone alerts and zonal shifts (runner/zones.py): intake on the webhook's store thread, the expiry and
    # hold-time loop on the worker's.
    zones = zone_service(config, intake_db, worker.wake.set)
    app = build_app(
        config,
        intake_db,
        metrics,
        worker.wake.set,
        lambda: ready,
        action_problems=None if action is None else action.problems,
        zones=zones,
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        # Recover before listening: an interrupted action must be marked before new alerts arrive.
        await worker.recover()
        if isinstance(action, FastPathAction):
            await action.warm()
        site = web.TCPSite(runner, config.host, config.port, ssl_context=_ssl_context(config), reuse_address=True)
        await site.start()
        scheme = "https" if config.tls_cert else "http"
        log.info(
            "depmirror runner %s listening on %s://%s:%d (mode %s, pid %d)",
            config.runner_id,
            scheme,
            config.host,
            config.port,
            config.mode,
            os.getpid(),
        )
        # Everything loaded so far (modules, config, graph, pools) lives as long as the process: moved out of
        # the collector's reach, a full collection no longer walks it, which cut the webhook's p99 from
        # ~70 ms to the store's own time (docs/performance.md, "The runner under load").
        gc.freeze()
        ready = True
        worker_task = asyncio.create_task(worker.run(stop))
        zones_task = None if zones is None else asyncio.create_task(zones.run(stop, db))
        reconcile_task = None if reconciler is None else asyncio.create_task(reconciler.run(stop))
        await stop.wait()
        ready = False
        log.info("stopping: waiting up to %.0fs for running actions", DRAIN_TIMEOUT_S)
        await worker_task
        if zones_task is not None:
            await zones_task
        if reconciler is not None and reconcile_task is not None:
            await reconcile.finish(reconciler, reconcile_task, DRAIN_TIMEOUT_S)
        await worker.drain(DRAIN_TIMEOUT_S)
        playbook = action.playbook if isinstance(action, FastPathAction) else action
        if isinstance(playbook, AnsibleRunnerAction) and not worker.idle():
            playbook.cancel()
            await worker.drain(10.0)
    finally:
        if isinstance(action, FastPathAction):
            action.close()
        await runner.cleanup()
        for caller in (intake_db, db):
            caller.shutdown()
            caller.store.close()
