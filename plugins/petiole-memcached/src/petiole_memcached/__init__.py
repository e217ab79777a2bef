"""petiole-memcached: a memcached result backend for Petiole."""

__version__ = "0.1.0"
