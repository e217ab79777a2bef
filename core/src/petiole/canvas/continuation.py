"""What happens after a task finished: its callbacks, the rest of its chain, its chord.

Runs in the process that ran the task, after its result is stored and before
its message is acknowledged, so a crash in between only means the task and its
continuation run again (at-least-once). Chord accounting is idempotent:
``set_add`` counts a redelivered member once, and ``claim`` lets exactly one
member — the one that completed the group, or failed first — decide what
happens to the callback. Both live in the app's coordination store
(:mod:`petiole.coordination`). Without one, the chord cannot be joined: its
result fails with :class:`~petiole.coordination.CoordinationUnavailable`
(stored by every member that finishes), so the caller sees why rather than
waiting for a callback that never fires. When no worker can read the members'
results (a result backend that sends them to their sender, ``rpc://``), each
member also leaves its value in the coordination store for the callback.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from petiole import coordination, remote_errors, states
from petiole.backend import Coordination, ResultRecord
from petiole.canvas.signature import check_signature, from_dict
from petiole.canvas.workflows import chain
from petiole.envelope import Workflow
from petiole.errors import ChordError, SerializationError
from petiole.producer import Producer
from petiole.request import Request, current_request
from petiole.result import GroupResult

logger = logging.getLogger("petiole.worker")


def chord_keys(group_id: str) -> tuple[str, str]:
    """The coordination keys of a chord: its finished-members set and its callback claim."""
    return f"petiole:chord:{group_id}", f"petiole:chord:{group_id}:fired"


def value_key(group_id: str, index: int) -> str:
    """Where a chord member leaves its value when no worker can read its result."""
    return f"petiole:chord:{group_id}:value:{index}"


def check_workflow_headers(headers: Mapping[str, Any]) -> None:
    """Raise :class:`ValueError` naming the header unless ``callbacks``, ``errbacks``,
    ``chain`` and ``chord`` have the shapes the continuation relies on. Costs
    nothing for a message without them."""
    workflow = Workflow.of(headers)
    if not workflow.continues:  # no steps to check (most messages): no generator made
        return
    for where, step in workflow.labelled_steps():
        check_signature(step, where)


def planned_children(headers: Mapping[str, Any]) -> list[str]:
    """Ids the continuation will send, known in advance (they were frozen)."""
    workflow = Workflow.of(headers)
    if not (workflow.callbacks or workflow.chain):  # most messages: nothing planned
        return []
    ids = [cb.get("options", {}).get("task_id") for cb in workflow.callbacks]
    rest = workflow.chain
    if rest:
        ids.append(rest[0].get("options", {}).get("task_id"))
    return [i for i in ids if isinstance(i, str)]


class Continuation:
    def __init__(self, app: Producer) -> None:
        self.app = app

    def _coordination(self, task_id: str, info: Mapping[str, Any]) -> Coordination | None:
        """The coordination store; None, with the chord failed saying why, when there is none."""
        try:
            return coordination.required(lambda: self.app.coordination, coordination.CHORD)
        except coordination.CoordinationUnavailable as exc:
            logger.error("chord %s cannot be joined: %s", info["id"], exc)
            self._store_failure(from_dict(info["body"], self.app).last_id(), exc, task_id)
            return None

    def _ttl(self) -> float | None:
        ttl = self.app.settings.result_ttl_s
        return ttl if ttl > 0 else None

    # -- success -------------------------------------------------------------------

    def succeeded(self, request: Request, value: Any) -> None:
        workflow = Workflow.of(request.headers)
        for callback in workflow.callbacks:
            from_dict(callback, self.app).apply_async((value,))
        rest = workflow.chain
        if rest:
            chain(*(from_dict(step, self.app) for step in rest), app=self.app).apply_async((value,))
        info = workflow.chord
        if info:
            self._member_done(request.id, info, workflow.group_index, value)

    def _member_done(
        self, task_id: str, info: Mapping[str, Any], index: int | None, value: Any
    ) -> None:
        store = self._coordination(task_id, info)
        if store is None:
            return
        # With a backend that sends results to their sender (rpc://), no worker can
        # read the members' results: each member leaves its value for the callback
        # in the coordination store, before it counts itself done.
        carried = self.app.backend.capabilities.replies_to_sender and index is not None
        if carried and index is not None:
            self._keep_value(store, info["id"], index, value)
        done_key, fired_key = chord_keys(info["id"])
        if store.set_add(done_key, task_id, ttl_s=self._ttl()) < info["size"]:
            return
        if store.claim(fired_key, task_id, ttl_s=self._ttl()) != task_id:
            return  # another member (or an earlier delivery of another) fired it
        if carried:
            values = self._kept_values(store, info["id"], info["size"])
        else:
            members = GroupResult.restore(info["id"], self.app)
            values = members.get(timeout=0, propagate=True)
        from_dict(info["body"], self.app).apply_async((values,))

    def _keep_value(self, store: Coordination, group_id: str, index: int, value: Any) -> None:
        serializer = self.app.result_serializer
        payload = serializer.dumps(value)
        mark = json.dumps([serializer.content_type, base64.b64encode(payload).decode()])
        store.put_mark(value_key(group_id, index), mark, ttl_s=self._ttl())

    def _kept_values(self, store: Coordination, group_id: str, size: int) -> list[Any]:
        keys = [value_key(group_id, i) for i in range(size)]
        marks = store.get_marks(keys)
        missing = [i for i, key in enumerate(keys) if key not in marks]
        if missing:
            raise ChordError(
                f"chord {group_id}: the values of members {missing} are gone from the "
                "coordination store (expired: result_ttl_s)"
            )
        values = []
        for key in keys:
            content_type, encoded = json.loads(marks[key])
            serializer = self.app.result_serializer_for(content_type)
            values.append(serializer.loads(base64.b64decode(encoded)))
        return values

    # -- failure -----------------------------------------------------------------------

    def failed(self, request: Request, exc: BaseException) -> None:
        workflow = Workflow.of(request.headers)
        for errback in workflow.errbacks:
            from_dict(errback, self.app).apply_async((request.id,))
        chord_info = workflow.chord
        rest = [from_dict(step, self.app) for step in workflow.chain]
        if rest:
            # The chain stops here; its later steps (and so its result) fail with this error.
            for step in rest:
                self._store_failure(step.last_id(), exc, request.id)
            chord_info = rest[-1]["options"].get("chord") or chord_info
        if chord_info:
            self._member_failed(request.id, workflow.group_index, chord_info, exc)

    def _member_failed(
        self, task_id: str, index: int | None, info: Mapping[str, Any], exc: BaseException
    ) -> None:
        store = self._coordination(task_id, info)
        if store is None:
            return
        _, fired_key = chord_keys(info["id"])
        if store.claim(fired_key, task_id, ttl_s=self._ttl()) != task_id:
            return
        body = from_dict(info["body"], self.app)
        error = ChordError(
            f"chord member {index} (task {task_id}) failed: {type(exc).__name__}: {exc}",
            task_id,
            index,
        )
        self._store_failure(body.last_id(), error, task_id)
        for errback in body["options"].get("link_error") or ():
            from_dict(errback, self.app).apply_async((body.last_id(),))

    def _store_failure(self, task_id: str, exc: BaseException, failed_task_id: str) -> None:
        serializer = self.app.result_serializer
        description = remote_errors.describe(exc)
        try:
            payload = serializer.dumps(description)
        except SerializationError:
            description["args"] = None
            payload = serializer.dumps(description)
        self.app.store_result(
            ResultRecord(
                task_id,
                states.FAILURE,
                payload,
                serializer.content_type,
                None,
                time.time(),
                {"failed_task": failed_task_id},
                # Continuations run in the failed task's context: its sender gets this.
                reply_to=_sender_address(),
            )
        )


def _sender_address() -> str | None:
    """The reply address of the task being continued (``rpc://``), if any."""
    request = current_request.get()
    return request.reply_to if request is not None else None
