"""Canvas: signatures and the workflows built from them (chain, group, chord)."""

from petiole.canvas.signature import Signature, from_dict, maybe_signature, signature, subtask
from petiole.canvas.workflows import chain, chord, group

__all__ = [
    "Signature",
    "chain",
    "chord",
    "from_dict",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
]
