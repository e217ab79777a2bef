"""petiole-yaml: a YAML serializer for Petiole, on PyYAML's safe loader."""

__version__ = "0.1.0"
