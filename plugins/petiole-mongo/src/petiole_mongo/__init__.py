"""petiole-mongo: a MongoDB transport (broker) and result backend for Petiole."""

__version__ = "0.1.0"
