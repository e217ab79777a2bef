"""RQ's settings module for ``rq worker --config rq_settings``: only the server (a module
of its own, because RQ would also read ``sys_rq.NAME`` as the worker's name)."""

from systemkit import redis_url

REDIS_URL = redis_url()
