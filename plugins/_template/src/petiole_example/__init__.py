"""petiole-example: a template for Petiole plugins — a transport, a result backend
and a serializer, working, on an in-process store that stands in for a server."""

__version__ = "0.1.0"
