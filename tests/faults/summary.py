"""The fault tests' table at the end of the run: every scenario's movements expected,
performed, duplicated and lost.

The figures travel on their test's report (``user_properties``), so that the table is
complete also when the tests ran in pytest-xdist's worker processes (``make test``)."""

from collections.abc import Generator
from dataclasses import asdict

import pytest

from tests.faults import audit
from tests.faults.scale import current, seed

_PROPERTY = "fault_figures"
_SUMMARY: list[audit.Figures] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    while audit.REPORTED:
        report.user_properties.append((_PROPERTY, asdict(audit.REPORTED.pop(0))))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == _PROPERTY and isinstance(value, dict):
            _SUMMARY.append(audit.Figures(**{**value, "problems": tuple(value["problems"])}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SUMMARY:
        return
    terminalreporter.section(f"fault tests ({current().name} size, seed {seed()})")
    width = max(len("scenario"), *(len(f.scenario) for f in _SUMMARY))
    terminalreporter.write_line(
        f"{'scenario':<{width}} {'expected':>8} {'performed':>9} {'duplicated':>10} {'lost':>5}"
    )
    for figures in _SUMMARY:
        terminalreporter.write_line(
            f"{figures.scenario:<{width}} {figures.expected:>8} {figures.performed:>9}"
            f" {figures.duplicated:>10} {figures.lost:>5}"
            + ("" if not figures.problems else f"  ({len(figures.problems)} problems)")
        )
        if figures.notes:
            terminalreporter.write_line(f"{'':<4}{figures.notes}")
