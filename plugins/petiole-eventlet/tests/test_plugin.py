"""The plugin as Petiole sees it: the core's green-plugin suite, in child processes so
that this one (shared with every other test) never imports eventlet."""

from __future__ import annotations

from petiole.testing.green_suite import GreenPluginSuite


class TestEventletPlugin(GreenPluginSuite):
    library = "eventlet"
    package = "petiole_eventlet"
    pool_class = "EventletPool"
    command = "petiole-eventlet"
