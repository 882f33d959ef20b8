"""DatasetPartitionTrigger: the deferred half of DatasetPartitionSensor, polling in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_multicloud.sensors.checks import CheckResult, PartitionCheck, StableState

if TYPE_CHECKING:
    from airflow_multicloud.replication.model import Location

CLASSPATH = "airflow_multicloud.triggers.partition.DatasetPartitionTrigger"


class DatasetPartitionTrigger(BaseTrigger):
    """Poll a dataset partition until it is ready, then fire one event.

    Events: ``{"status": "success", "uri", "keys", "count", "total_bytes", "message"}``;
    ``{"status": "timeout", "message"}`` when ``deadline`` passes first (the message says what was seen);
    ``{"status": "error", "message"}`` when the partition cannot be checked (undefined connection, wrong
    credentials, missing bucket).

    Only the connection id is serialized: credentials are looked up inside the triggerer, so no secret is stored
    in the metadata database with the trigger.

    :param uri: the rendered partition URI.
    :param conn_id: Airflow connection id (None: the scheme's ``*_default``).
    :param marker: / :param glob: / :param min_objects: / :param stable_for: the readiness rule, as on the sensor.
    :param poke_interval: seconds between checks.
    :param deadline: epoch seconds after which a timeout event fires (None: wait for ever).
    :param stable_state: what the sensor's first check saw (``stable_for`` only), so the quiet period
        measured on the worker is not lost on deferral.
    """

    def __init__(
        self,
        *,
        uri: str,
        conn_id: str | None = None,
        marker: str | None = None,
        glob: str | None = None,
        min_objects: int = 1,
        stable_for: float | None = None,
        poke_interval: float = 60.0,
        deadline: float | None = None,
        stable_state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.uri = uri
        self.conn_id = conn_id
        self.marker = marker
        self.glob = glob
        self.min_objects = min_objects
        self.stable_for = stable_for
        self.poke_interval = poke_interval
        self.deadline = deadline
        self.stable_state = stable_state
        # validated here too: a trigger built by hand must fail as clearly as the sensor
        self._check = PartitionCheck(uri, marker, glob, min_objects, stable_for, StableState.from_json(stable_state))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "uri": self.uri,
                "conn_id": self.conn_id,
                "marker": self.marker,
                "glob": self.glob,
                "min_objects": self.min_objects,
                "stable_for": self.stable_for,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "stable_state": self.stable_state,
            },
        )

    def _open(self) -> Location:
        from airflow_multicloud.hooks.factory import open_location

        return open_location(self.uri, self.conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Store SDKs and the connection lookup block; each runs in a thread so the triggerer's event loop keeps
        # serving its other triggers. From a thread, BaseHook.get_connection reaches the triggerer's supervisor
        # through the loop (TriggerCommsDecoder.send uses run_coroutine_threadsafe), which is safe.
        try:
            loc = await asyncio.to_thread(self._open)
        except Exception as exc:  # any failure to open is final: report it to the task instead of crashing
            yield TriggerEvent({"status": "error", "message": f"cannot check {self._check.awaited}: {exc}"})
            return
        self.log.info("waiting for %s (every %ss)", self._check.awaited, self.poke_interval)
        while True:
            try:
                result: CheckResult = await asyncio.to_thread(self._check.check, loc)
            except Exception as exc:
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            if result.ready:
                self.log.info("%s", result.message)
                yield TriggerEvent({"status": "success", "message": result.message, **result.xcom(self.uri)})
                return
            self.log.info("%s", result.message)
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "message": result.message})
                return
            await asyncio.sleep(self._sleep_for())

    def _sleep_for(self) -> float:
        """Wake for the deadline rather than sleep past it, so the timeout fires on time with a final look."""
        if self.deadline is None:
            return self.poke_interval
        return max(0.0, min(self.poke_interval, self.deadline - time.time()))
