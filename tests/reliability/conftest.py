"""The reliability suite's report: each test's summary, gathered at the end of the run.

Each test prints its own summary (shown with -s or on failure); this repeats them all in
pytest's terminal summary so that CI logs always carry the figures.
"""

from __future__ import annotations

from typing import Any

from tests.reliability.harness import SUMMARIES


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not SUMMARIES:
        return
    terminalreporter.section("reliability summaries")
    for summary in SUMMARIES:
        for line in summary.render().splitlines():
            terminalreporter.write_line(line)
