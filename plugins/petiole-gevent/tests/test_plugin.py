"""The plugin as Petiole sees it: the core's green-plugin suite, in child processes so
that this one (shared with every other test) never imports gevent."""

from __future__ import annotations

from petiole.testing.green_suite import GreenPluginSuite


class TestGeventPlugin(GreenPluginSuite):
    library = "gevent"
    package = "petiole_gevent"
    pool_class = "GeventPool"
    command = "petiole-gevent"
