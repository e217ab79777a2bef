"""petiole-sqs: the Amazon SQS transport (``sqs://``) for Petiole."""

__version__ = "0.1.0"
