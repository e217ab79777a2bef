"""petiole-zstd: Zstandard compression of Petiole message bodies (the ``zstd`` codec)."""

__version__ = "0.1.0"
