"""Start-up: services that should be running are brought back when the control plane starts, and
their autoscalers watch them again."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

log = logging.getLogger("pai_lab.serving")


async def on_start(platform) -> None:
    from pai_lab.serving.autoscaler import autoscaler
    from pai_lab.serving.manager import manager
    from pai_lab.serving.tables import ServiceAutoscalerRow, ServiceRow

    with platform.store.transaction() as session:
        wanted = session.scalar(select(ServiceRow.id).where(ServiceRow.state == "Running").limit(1))
        scaled = session.scalar(select(ServiceAutoscalerRow.service_id).limit(1))
    if scaled is not None:  # the policies are stored with their services: they go on watching
        autoscaler(platform).ensure_running()
    if wanted is None:
        return
    loop = asyncio.get_running_loop()
    # starting the gateway takes a moment; the server answers meanwhile
    loop.run_in_executor(None, _restore, manager(platform))


def _restore(mgr) -> None:
    try:
        mgr.sync()
        log.info("pai_lab: services restored on the serving gateway at %s", mgr.url)
    except Exception:
        log.error("pai_lab: could not restore the services", exc_info=True)
