"""LogBudget: a client's log lines are bounded in total, across the layers that share it."""

from __future__ import annotations

import logging

import pytest

from agent.rpc.logbudget import LOG_BURST, LogBudget


def test_two_layers_sharing_one_budget_log_no_more_than_its_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    dispatcher, transport = logging.getLogger("test.dispatcher"), logging.getLogger("test.mqtt")
    budget = LogBudget(dispatcher)
    for i in range(100):
        budget.log("flooder", 0.0, logging.WARNING, "refused %d", i)
        budget.log("flooder", 0.0, logging.WARNING, "rate limited %d", i, logger=transport)
    lines = [r for r in caplog.records if r.name.startswith("test.")]
    assert len(lines) == LOG_BURST
    assert {r.name for r in lines} == {"test.dispatcher", "test.mqtt"}
    assert budget.suppressed_total == 200 - LOG_BURST


def test_the_next_line_after_the_budget_refills_says_how_many_were_suppressed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    budget = LogBudget(logging.getLogger("test.budget"), rate=1.0, burst=1)
    assert budget.log("c", 0.0, logging.WARNING, "first")
    assert not budget.log("c", 0.1, logging.WARNING, "second")
    assert not budget.log("c", 0.2, logging.WARNING, "third")
    assert budget.log("c", 1.5, logging.WARNING, "fourth")
    assert caplog.records[-1].getMessage() == "fourth (2 earlier lines for this client suppressed)"
    # Another client's budget is its own.
    assert budget.log("other", 0.2, logging.WARNING, "hello")
