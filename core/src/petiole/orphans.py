"""A child process that must not outlive its parent: it exits when the parent dies.

Pool children and the worker processes a supervisor starts hold messages under
leases and renew them; orphaned, they would keep renewing for no one.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def exit_with_parent(parent_pid: int) -> None:
    """Make this process exit as soon as ``parent_pid`` (its parent) is gone."""
    try:  # Linux: the kernel signals us the moment the parent dies.
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # it died before the kernel was told to watch
        os._exit(1)

    def watch() -> None:  # Elsewhere (and as a backstop): notice re-parenting.
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, name="petiole-parent-watch", daemon=True).start()
