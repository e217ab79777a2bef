"""petiole-example-serializer: a third-party Petiole serializer, canonical sorted-key JSON."""

__version__ = "0.1.0"
