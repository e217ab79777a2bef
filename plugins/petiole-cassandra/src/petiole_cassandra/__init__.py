"""petiole-cassandra: an Apache Cassandra result backend for Petiole."""

__version__ = "0.1.0"
