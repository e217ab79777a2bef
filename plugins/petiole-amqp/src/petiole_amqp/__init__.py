"""petiole-amqp: RabbitMQ for Petiole. So far the groundwork of issue #16: a test node
(:mod:`petiole_amqp.testing`) and the client library, chosen on measurements (README.md);
the transport and the ``rpc://`` result backend come next."""

__version__ = "0.1.0"
