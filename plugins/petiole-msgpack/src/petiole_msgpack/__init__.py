"""petiole-msgpack: a MessagePack serializer for Petiole."""

__version__ = "0.1.0"
