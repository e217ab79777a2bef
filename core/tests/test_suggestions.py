"""Did you mean ...?: the closest name, or none when nothing is alike enough."""

from __future__ import annotations

from petiole.suggestions import closest, did_you_mean


def test_the_closest_name_is_found_and_a_name_like_none_gets_none() -> None:
    assert closest("countdwn", ["countdown", "eta", "expires"]) == "countdown"
    assert closest("xyz", ["countdown", "eta"]) is None


def test_the_cutoff_decides_how_alike_is_alike_enough() -> None:
    assert closest("reddis", ["redis", "rediss"], cutoff=0.75) == "redis"
    assert closest("rds", ["redis"], cutoff=0.9) is None


def test_did_you_mean_is_a_clause_or_nothing() -> None:
    assert did_you_mean("qeue", ["queue"]) == " (did you mean 'queue'?)"
    assert did_you_mean("zzz", ["queue"]) == ""
