"""petiole-example: a template for a Petiole transport plugin."""

__version__ = "0.1.0"
