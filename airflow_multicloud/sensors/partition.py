"""DatasetPartitionSensor: wait until a dataset partition on S3, COS, OSS or local files is ready."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_multicloud.lineage.datasets import check_uri_argument, rendered_uri
from airflow_multicloud.sensors.checks import PartitionCheck, PartitionSensorError, validate_readiness

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_multicloud.replication.model import Location

#: extra seconds the task-level deferral timeout allows beyond ``timeout``: the trigger itself fires the timeout
#: (with a message saying what it saw); Airflow's own deferral timeout is only the backstop for a lost triggerer.
DEFERRAL_GRACE = 120.0


class DatasetPartitionSensor(BaseSensorOperator):
    """Wait until the partition at ``uri`` is ready, by exactly one of three rules.

    * ``marker``: an object of that name (relative to the partition) exists, e.g. ``_SUCCESS``.
    * ``glob``: at least ``min_objects`` keys relative to the partition match the ``fnmatch`` pattern
      (``*`` also matches ``/``).
    * ``stable_for``: the listing (keys, sizes, ETags) has not changed for that many seconds and is not empty.
      The previous listing is kept between pokes, so use ``mode="poke"`` or ``deferrable=True``, not reschedule.

    The URI names a folder: ``s3://raw/flights/date=2024-01-01`` is read as ``.../date=2024-01-01/``. Our own
    ``_multicloud/`` folder (manifests) is ignored. On success the task returns (XCom) ``{"uri", "keys",
    "count", "total_bytes"}`` with keys relative to the partition (for ``marker``, the marker itself is left out;
    for ``glob``, only the matching keys).

    With ``deferrable=True`` the wait runs in the triggerer (:class:`DatasetPartitionTrigger`) and holds no
    worker slot. ``timeout`` and ``soft_fail`` apply in both modes; a timeout's message names the partition and
    what was last seen. An error that waiting cannot fix (undefined connection, denied, no bucket) fails the task
    even with ``soft_fail``; throttling and 5xx answers only delay the next look.

    :param uri: partition URI: ``s3://``, ``cos://``, ``oss://`` or ``file://`` (templated), or an upstream task's
        output (XComArg). What the DAG file fixes (scheme, bucket) is checked when it is parsed, the rest when the
        sensor runs.
    :param conn_id: Airflow connection (default: the scheme's ``aws_default`` / ``cos_default`` / ``oss_default``).
    :param marker: object name that must exist, relative to the partition.
    :param glob: pattern on keys relative to the partition; with ``min_objects``.
    :param min_objects: how many keys must match ``glob`` (default 1).
    :param stable_for: seconds (or a timedelta) the listing must stay unchanged.
    :param deferrable: hand the wait to the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("uri", "conn_id", "marker", "glob")
    ui_color = "#fdf5e6"

    def __init__(
        self,
        *,
        uri: str | XComArg,
        conn_id: str | None = None,
        marker: str | None = None,
        glob: str | None = None,
        min_objects: int = 1,
        stable_for: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        seconds = stable_for.total_seconds() if isinstance(stable_for, timedelta) else stable_for
        # checked here so a wrong combination fails when the DAG is parsed, not when the task first runs
        self.kind = validate_readiness(marker, glob, seconds, min_objects)
        check_uri_argument("uri", uri)
        if self.kind == "stable_for" and self.mode == "reschedule":
            raise ValueError(
                "stable_for= needs the previous listing between pokes, which mode='reschedule' loses: "
                "use mode='poke' or deferrable=True"
            )
        # a template or an XComArg until Airflow renders it; a checked URI string from execute() on
        self.uri: str = uri  # type: ignore[assignment]
        self.conn_id = conn_id
        self.marker = marker
        self.glob = glob
        self.min_objects = min_objects
        self.stable_for = seconds
        self.deferrable = deferrable
        self._check: PartitionCheck | None = None
        self._location: Location | None = None
        self._started: float | None = None

    # ---- shared ---------------------------------------------------------------------------------------
    def _partition_check(self) -> PartitionCheck:
        # built on first use: ``uri`` and ``marker`` are rendered by then; kept so stable_for remembers its listing
        if self._check is None:
            self._check = PartitionCheck(self.uri, self.marker, self.glob, self.min_objects, self.stable_for)
        return self._check

    def _open(self) -> Location:
        if self._location is None:
            from airflow_multicloud.hooks.factory import open_location

            self._location = open_location(self.uri, self.conn_id)
        return self._location

    def _elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def _timed_out(self, message: str) -> None:
        """Raise the timeout (a skip with ``soft_fail``) with a message that says what was awaited and seen."""
        from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

        text = f"timed out after {self.timeout:g}s {message}"
        if self.soft_fail:
            raise AirflowSkipException(text)
        raise AirflowSensorTimeout(text)

    # ---- poke mode ------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        self._started = time.monotonic()
        self.uri = rendered_uri("uri", self.uri)
        if self.reschedule:
            # the base class measures a rescheduled sensor's timeout from its first try; so do we
            from airflow.sdk import timezone

            first = context["ti"].get_first_reschedule_date(context)
            if first is not None:
                self._started -= (timezone.utcnow() - first).total_seconds()
        if self.deferrable:
            return self._execute_deferrable()
        return super().execute(context)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        check = self._partition_check()
        result = check.check(self._open())
        if result.ready:
            self.log.info("%s", result.message)
            return PokeReturnValue(is_done=True, xcom_value=result.xcom(self.uri))
        self.log.info("%s", result.message)
        # Checked here rather than left to the base class, whose timeout message names neither the partition
        # nor what was seen.
        if self._started is not None and self._elapsed() >= self.timeout:
            self._timed_out(result.message)
        return False

    # ---- deferrable mode ------------------------------------------------------------------------------
    def _execute_deferrable(self) -> Any:
        from airflow_multicloud.triggers.partition import DatasetPartitionTrigger

        # one look first, as the amazon sensors do: a partition that is already there costs no deferral
        check = self._partition_check()
        result = check.check(self._open())
        if result.ready:
            self.log.info("%s", result.message)
            return result.xcom(self.uri)
        self.log.info("%s; deferring to the triggerer", result.message)
        trigger = DatasetPartitionTrigger(
            uri=self.uri,
            conn_id=self.conn_id,
            marker=self.marker,
            glob=self.glob,
            min_objects=self.min_objects,
            stable_for=self.stable_for,
            poke_interval=self.poke_interval,
            deadline=time.time() + self.timeout - self._elapsed(),
            stable_state=check.state.to_json() if self.stable_for else None,
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + max(DEFERRAL_GRACE, 2 * self.poke_interval)),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the triggerer: return the keys seen, or fail/skip with the trigger's message."""
        if not event or "status" not in event:
            raise PartitionSensorError(f"DatasetPartitionSensor for {self.uri} resumed without a trigger event")
        status = event["status"]
        if status == "success":
            self.log.info("%s", event.get("message", "ready"))
            return {k: event[k] for k in ("uri", "keys", "count", "total_bytes")}
        if status == "timeout":
            self._timed_out(event["message"])
        # status "error": fail with the trigger's message; not a timeout, so soft_fail does not hide it
        raise PartitionSensorError(event.get("message", f"trigger failed for {self.uri}: {event}"))
