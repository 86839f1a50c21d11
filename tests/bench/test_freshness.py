"""The freshness benchmark's arithmetic and report (the run itself takes minutes: `python -m
bench.freshness`)."""

from __future__ import annotations

from bench.freshness import Outcome, targets, with_section


def outcome(key: str, **changes: object) -> Outcome:
    values: dict[str, object] = {
        "key": key,
        "label": key,
        "changes": 10,
        "inside": 6,
        "landed_inside": 6,
        "outside": 4,
        "landed_outside": 4,
        "lags": [10.0, 20.0, 30.0, 40.0, 100.0],
        "ticks": 4,
        "seconds": 300.0,
        "requests": 4,
        "token_mints": 1,
        "reconcile_requests": 18,
        "differing_inside": 0,
        "differing_outside": 0,
    }
    values.update(changes)
    return Outcome(**values)  # type: ignore[arg-type]


def test_requests_per_day_come_from_the_cost_of_a_tick() -> None:
    feed = outcome("changed")
    assert feed.per_tick() == 1.0
    assert feed.per_day(1) == 1440 + 18 + 1  # ticks, one reconcile, one subscription check
    assert feed.per_day(5) == 288 + 18 + 1
    assert outcome("booked", requests=496).per_day(5) == 124 * 288 + 18
    assert (feed.lag(0.5), feed.lag(1.0)) == (30.0, 100.0)


def test_targets_pass_and_miss() -> None:
    rows = targets(
        [outcome("booked", requests=496), outcome("multi", requests=16), outcome("changed")]
    )
    assert sum("PASS" in r for r in rows) == 4 and sum("MISS" in r for r in rows) == 1  # p95
    late = targets([outcome("changed", landed_outside=3, lags=[1.0, 2.0])])
    assert "| 1 missed, 0 differ from truth | MISS |" in "\n".join(late)


def test_the_section_replaces_only_its_own() -> None:
    text = "# Results\n\n## Side by side\n\na\n\n## Freshness: old\n\nold\n\n## Notes\n\nn\n"
    replaced = with_section(text, "## Freshness: new\n\nnew")
    expected = "# Results\n\n## Side by side\n\na\n\n## Freshness: new\n\nnew\n\n## Notes\n\nn\n"
    assert replaced == expected
    assert with_section("# Results\n", "## Freshness: x") == "# Results\n\n## Freshness: x\n"
