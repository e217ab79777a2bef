"""Admitting a message: what a worker checks with a message's headers alone,
before it holds the message to run.

In order: the delivery count (``max_deliveries``), the framing, the signature
(on the raw bytes, before the header block is parsed), the headers, the
content type (``accept_content``) and encoding, that the task is registered,
expiry and ETA. A message failing a check is settled at once — dead-lettered
with the reason, acknowledged as REVOKED when expired, put back until its ETA —
and reported to the hooks (``petiole_task_rejected``, ``petiole_task_unknown``);
the body is never deserialized here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from petiole.app import Petiole
from petiole.canvas.continuation import check_workflow_headers
from petiole.config import Settings
from petiole.envelope import IDENTITY, Envelope, Frame, peek_signer
from petiole.errors import PetioleError, PluginError, ProtocolError, SignatureError
from petiole.logs import TASK_LOGGER
from petiole.pools.base import Job
from petiole.stages import verify_frame
from petiole.task import Task
from petiole.transport import Delivery
from petiole.worker.hooks import MessageHooks
from petiole.worker.settle import Settler

logger = logging.getLogger(TASK_LOGGER)

# A message delivered this much before its ETA is put back until due (the broker's
# delay is authoritative; this only catches brokers with a maximum delay).
_ETA_TOLERANCE_S = 0.05


class Admission:
    """Checks messages for one worker (``settings``: the worker's own)."""

    def __init__(
        self, app: Petiole, settings: Settings, settler: Settler, hooks: MessageHooks
    ) -> None:
        self.app = app
        self.settings = settings
        self.settler = settler
        self.hooks = hooks
        self.max_deliveries = settings.max_deliveries
        self.accepted_content_types = app.accepted_content_types()
        # Checked once: formatting a line per task is skipped unless INFO is on.
        self._info = logger.isEnabledFor(logging.INFO)

    def check(self, delivery: Delivery) -> Job | None:
        """The job to run for this message, or None when it was settled here."""
        if delivery.delivery_count > self.max_deliveries:
            self.refuse(
                delivery,
                "max_deliveries",
                f"delivered {delivery.delivery_count} times "
                f"(max_deliveries={self.max_deliveries}): "
                "it may be killing its worker; inspect it with `petiole dlq list`",
                self._verified_envelope(delivery),
            )
            return None
        try:
            frame = Frame.parse(delivery.payload)
        except ProtocolError as exc:
            self.refuse(delivery, "malformed", f"malformed message: {exc}")
            return None
        try:
            # The raw bytes, before the header block is parsed or the body decoded.
            verify_frame(
                frame, self.app.signer(), require_signature=self.settings.require_signature
            )
        except SignatureError as exc:
            named = peek_signer(delivery.payload)
            signed_by = f" (signed by {named!r})" if isinstance(named, str) else ""
            self.refuse(delivery, "signature", f"refused, not verified{signed_by}: {exc}")
            return None
        try:
            envelope = frame.envelope()
            check_workflow_headers(envelope.headers)
        except (ProtocolError, ValueError) as exc:
            self.refuse(delivery, "malformed", f"malformed message: {exc}")
            return None
        if not self._decodable(delivery, envelope):
            return None
        task = self.app.tasks.get(envelope.task_name)
        if task is None:
            self.settler.dead_letter(
                delivery,
                f"task {envelope.task_name!r} is not registered on this worker; start a worker "
                "whose app defines it, then `petiole dlq requeue`",
                not_run=envelope,
            )
            self.hooks.unknown(envelope, delivery.queue)
            return None
        now = time.time()
        expires = envelope.expires
        if expires is not None and expires < now:
            reason = self.settler.expired(delivery, envelope, expires)
            self.hooks.rejected(delivery.queue, "expired", reason, envelope)
            return None
        eta = envelope.eta
        if eta is not None and eta - now > _ETA_TOLERANCE_S:
            self.settler.redelay(delivery, envelope, eta - now)
            return None
        if self._info:
            logger.info("task %s[%s] received", envelope.task_name, envelope.task_id)
        soft, hard = self.time_limits(task, envelope)
        return Job(envelope, delivery.queue, delivery.delivery_count, delivery.receipt, soft, hard)

    def _verified_envelope(self, delivery: Delivery) -> Envelope | None:
        """The envelope of a message refused before it was read, when it is well formed
        and verified (a message that fails either records nothing under its id)."""
        try:
            frame = Frame.parse(delivery.payload)
            verify_frame(
                frame, self.app.signer(), require_signature=self.settings.require_signature
            )
            return frame.envelope()
        except (PetioleError, ValueError):
            return None

    def _decodable(self, delivery: Delivery, envelope: Envelope) -> bool:
        """Whether this worker may and can decode the body (refusing it if not)."""
        if envelope.content_type not in self.accepted_content_types:
            self.refuse(
                delivery,
                "content_type",
                f"content type {envelope.content_type!r} is not accepted (accept_content="
                f"{self.settings.accept_content}); add its serializer to accept_content "
                "if its senders are trusted, then `petiole dlq requeue`",
                envelope,
            )
            return False
        if envelope.content_encoding != IDENTITY:
            try:
                self.app.codec(envelope.content_encoding)
            except PluginError as exc:
                self.refuse(
                    delivery,
                    "content_encoding",
                    f"content encoding {envelope.content_encoding!r} cannot be decoded here: "
                    f"{exc}; then `petiole dlq requeue`",
                    envelope,
                )
                return False
        return True

    def refuse(
        self, delivery: Delivery, cause: str, reason: str, envelope: Envelope | None = None
    ) -> None:
        """Dead-letter a message that cannot run (recording its task FAILURE when the
        envelope is known), and say so to the hooks."""
        self.settler.dead_letter(delivery, reason, not_run=envelope)
        self.hooks.rejected(delivery.queue, cause, reason, envelope)

    def time_limits(
        self, task: Task[Any, Any], envelope: Envelope
    ) -> tuple[float | None, float | None]:
        """(soft, hard) seconds for one call: the message's own, else the task's, else
        the worker's settings (the app's, or the worker's own options)."""
        soft, hard = envelope.time_limits
        if soft is None:
            soft = task.options.soft_time_limit_s
        if soft is None:
            soft = self.settings.soft_time_limit_s
        if hard is None:
            hard = task.options.time_limit_s
        if hard is None:
            hard = self.settings.time_limit_s
        return soft, hard
