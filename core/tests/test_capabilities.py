"""petiole.capabilities.offers: isinstance against optional capabilities, answered per class."""

from __future__ import annotations

from collections.abc import Sequence

from petiole.capabilities import members, offers
from petiole.pools.base import Resizable
from petiole.transport import AcksInBatches, Delivery


class Batching:
    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        pass


class Plain:
    def ack(self, delivery: Delivery) -> None:
        pass


class Sized:
    def __init__(self) -> None:
        self.concurrency = 2  # an attribute the protocol names, set per instance

    def resize(self, concurrency: int) -> None:
        self.concurrency = concurrency


def test_a_class_that_has_the_methods_offers_the_capability_and_one_that_lacks_them_does_not() -> (
    None
):
    assert offers(Batching(), AcksInBatches)
    assert not offers(Plain(), AcksInBatches)
    assert offers(Batching(), AcksInBatches)  # the remembered answers are the same
    assert not offers(Plain(), AcksInBatches)


def test_an_instance_given_the_method_itself_offers_it_though_its_class_does_not() -> None:
    assert not offers(Plain(), AcksInBatches)  # the class's answer is remembered first
    wrapped = Plain()
    wrapped.ack_many = lambda deliveries: None  # type: ignore[attr-defined]

    assert offers(wrapped, AcksInBatches)
    assert not offers(Plain(), AcksInBatches)


def test_attributes_set_by_each_instance_count_as_the_protocol_says() -> None:
    assert offers(Sized(), Resizable)
    assert not offers(Batching(), Resizable)


def test_members_are_the_methods_and_annotated_attributes_a_protocol_names() -> None:
    assert members(AcksInBatches) == ("ack_many",)
    assert members(Resizable) == ("concurrency", "resize")
