"""The plugin's edge with boto3: one client, queue URLs, batches, and error translation.

Every boto3 call goes through :meth:`SqsClient.call`, which turns botocore's
exceptions into :class:`SqsRequestError` (a :class:`~petiole.errors.TransportError`)
carrying the SQS error code, so nothing above this module sees a botocore type.
Messages name the action and the queue; they never contain credentials (the
secret key and session token are scrubbed from any text botocore hands back).

Batch calls (``SendMessageBatch``, ``DeleteMessageBatch``,
``ChangeMessageVisibilityBatch``) report failures per entry. :meth:`SqsClient.batch`
retries the entries that failed on the server's side with backoff, and returns
the ones the server refused for good (``SenderFault``) to the caller, who
decides; nothing is dropped without the caller knowing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from petiole.errors import ConfigError, TransportError
from petiole.urls import mask_text, mask_url
from petiole_sqs.options import SqsOptions

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import BatchResultErrorEntryTypeDef

T = TypeVar("T")

BATCH_SIZE = 10  # SQS's limit on entries per batch call
# Server-side failures of single entries in a batch: attempts, and the first backoff.
_BATCH_ATTEMPTS = 5
_BATCH_BACKOFF_S = 0.05

QUEUE_MISSING = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
# Receipt handle refused: the message was deleted, or the handle is not current.
RECEIPT_REFUSED = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "AWS.SimpleQueueService.MessageNotInflight",
        "MessageNotInflight",
        "InvalidReceiptHandle",
    }
)


class SqsRequestError(TransportError):
    """An SQS request failed; ``code`` is SQS's error code ("" for a network failure)."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class SqsClient:
    """A thread-safe boto3 SQS client, with a cache of queue URLs by name."""

    def __init__(self, options: SqsOptions) -> None:
        self.options = options
        try:
            self._session = boto3.session.Session(
                profile_name=options.profile, region_name=options.region
            )
            region = self._session.region_name
            if region is None:
                raise ConfigError(
                    "the sqs transport needs an AWS region: set the 'region' option "
                    "(sqs://?region=eu-west-1) or AWS_DEFAULT_REGION"
                )
            config = botocore.config.Config(
                max_pool_connections=options.max_pool_connections,
                retries={"mode": "standard", "max_attempts": 5},
                # A long poll holds the connection for up to 20 s.
                read_timeout=options.wait_time_s + 40,
            )
            self.client: SQSClient = self._session.client(
                "sqs", region_name=region, endpoint_url=options.endpoint_url, config=config
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise ConfigError(f"cannot set up the SQS client: {self.scrub(str(exc))}") from exc
        self.region = region
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def describe(self) -> str:
        where = self.options.endpoint_url or f"region {self.region}"
        return f"SQS ({mask_url(where)})"

    def scrub(self, text: str) -> str:
        """``text`` with the secret key and session token (if botocore echoed them) masked."""
        text = mask_text(text)  # botocore repeats an endpoint_url's password in its errors
        try:
            credentials = self._session.get_credentials()
        except Exception:  # scrubbing must never replace the error it reports
            return text
        if credentials is None:
            return text
        for secret in (credentials.secret_key, credentials.token):
            if secret:
                text = text.replace(secret, "***")
        return text

    def call(self, action: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """``fn(**kwargs)``; botocore errors become :class:`SqsRequestError`."""
        try:
            return fn(**kwargs)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = self.scrub(str(error.get("Message", "") or exc))
            if code in QUEUE_MISSING and "QueueUrl" in kwargs:
                # Deleted behind our back (or the server restarted): the next call
                # looks it up again, and creates it where create_queues is on.
                self._forget_url(kwargs["QueueUrl"])
            raise SqsRequestError(
                f"{self.describe()}: {action} failed: {code}: {message}", code=code
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise SqsRequestError(
                f"{self.describe()}: {action} failed: {type(exc).__name__}: {self.scrub(str(exc))}"
            ) from exc

    # -- queues -----------------------------------------------------------------

    def queue_url(
        self,
        name: str,
        *,
        create: bool,
        attributes: Callable[[], Mapping[str, str]] | None = None,
    ) -> str | None:
        """The URL of queue ``name``; None when it does not exist and ``create`` is False.

        ``attributes()`` gives the attributes of a queue this call creates."""
        url = self._urls.get(name)
        if url is not None:
            return url
        try:
            url = self.call(f"find queue {name!r}", self.client.get_queue_url, QueueName=name)[
                "QueueUrl"
            ]
        except SqsRequestError as exc:
            if exc.code not in QUEUE_MISSING:
                raise
            if not create:
                return None
            url = self.call(
                f"create queue {name!r}",
                self.client.create_queue,
                QueueName=name,
                Attributes=dict(attributes() if attributes else {}),
            )["QueueUrl"]
        with self._lock:
            self._urls[name] = url
        return url

    def _forget_url(self, url: str) -> None:
        """Drop a cached URL (its queue was deleted behind our back)."""
        with self._lock:
            for name in [n for n, cached in self._urls.items() if cached == url]:
                del self._urls[name]

    # -- batches ------------------------------------------------------------------

    def batch(
        self,
        action: str,
        fn: Callable[..., Any],
        queue_url: str,
        entries: Sequence[Mapping[str, Any]],
    ) -> dict[str, BatchResultErrorEntryTypeDef]:
        """Run a batch call over ``entries`` (each with a unique ``Id``), 10 per request.

        Entries that fail on the server's side are retried; the returned dict maps
        the Id of each entry the server refused (SenderFault) to its error. Raises
        :class:`SqsRequestError` if server-side failures outlast the retries.
        """
        refused: dict[str, BatchResultErrorEntryTypeDef] = {}
        for start in range(0, len(entries), BATCH_SIZE):
            pending = list(entries[start : start + BATCH_SIZE])
            backoff = _BATCH_BACKOFF_S
            for attempt in range(1, _BATCH_ATTEMPTS + 1):
                response = self.call(action, fn, QueueUrl=queue_url, Entries=pending)
                retry: set[str] = set()
                for failure in response.get("Failed", []):
                    if failure.get("SenderFault", False):
                        refused[failure["Id"]] = failure
                    else:
                        retry.add(failure["Id"])
                if not retry:
                    break
                if attempt == _BATCH_ATTEMPTS:
                    first = next(f for f in response["Failed"] if f["Id"] in retry)
                    raise SqsRequestError(
                        f"{self.describe()}: {action}: {len(retry)} of {len(pending)} entries "
                        f"still failing after {attempt} attempts: {first['Code']}: "
                        f"{self.scrub(first.get('Message', ''))}",
                        code=first["Code"],
                    )
                pending = [entry for entry in pending if entry["Id"] in retry]
                time.sleep(backoff)
                backoff *= 2
        return refused
