"""The plan as `depmirror plan` prints it: most critical first, within a terminal's width unless `--wide`.

The instances and changes of a dependency ran to over 200 columns on one line, so by default each instance
has a line of its own with its change beside it (`provision`, `decommission`, nothing when it is kept), and
notes and warnings wrap with an indent. `--wide` keeps one line per dependency.
"""

from __future__ import annotations

import textwrap

from depmirror.planner.plan import DependencyPlan, Plan

DEFAULT_WIDTH = 120
_HEADER = ("DEPENDENCY", "KIND", "PORT", "WEIGHT", "RF", "MODE", "INSTANCES (role@host/zone)", "CHANGES")
_GAP = "  "


def render_table(plan: Plan, *, sort: str = "weight", width: int | None = DEFAULT_WIDTH) -> str:
    """The table, its notes and a footer; `width=None` puts each row on one line however long."""
    dependencies = list(plan.dependencies)  # the plan lists them by name
    if sort == "weight":
        dependencies.sort(key=lambda d: (-d.weight.value, d.name))
    rows = [_row(dep) for dep in dependencies]
    fixed = [max(len(row[i][0]) for row in [_header(), *rows]) for i in range(6)]
    if width is None:
        lines = _one_line_rows([_header(), *rows], fixed)
    else:
        lines = _wrapped_rows(_header(), dependencies, fixed)
    notes = [
        f"note: {d.name}: {cut}" for d in plan.dependencies for cut in (d.rf.budget_cut, d.rf.placement_cut) if cut
    ]
    notes += [f"warning: {w}" for w in plan.warnings]
    notes += [f"removed: {a.action} {a.dependency}@{a.host}: {a.reason}" for a in plan.removed]
    if width is not None:
        notes = [part for note in notes for part in textwrap.wrap(note, width, subsequent_indent="    ")]
    return "\n".join(lines + notes) + "\n" + footer(plan) + "\n"


def footer(plan: Plan) -> str:
    """Actions, and the cost of what the plan runs (not of what the budget granted: placement may cut more)."""
    counts = {"provision": 0, "keep": 0, "decommission": 0}
    for action in plan.actions():
        counts[action.action] += 1
    instances = sum(len(d.instances) for d in plan.dependencies)
    placed = plan.budget.get("placed", plan.budget["used"])
    text = (
        f"{counts['provision']} to provision, {counts['keep']} to keep, {counts['decommission']} to decommission; "
        f"{instances} instance(s) placed, cost {placed:g}"
    )
    if plan.budget["limit"] is not None:
        text += f" of budget {plan.budget['limit']:g}"
    if plan.budget["used"] > placed + 1e-9:
        text += f" ({plan.budget['used']:g} granted; placement could not hold the rest)"
    return text


def _header() -> list[list[str]]:
    return [[cell] for cell in _HEADER]


def _row(dep: DependencyPlan) -> list[list[str]]:
    instances = [f"{i.role}@{i.host}/{i.zone}" for i in dep.instances]
    changes = [f"{a.action} {a.host}" for a in dep.actions if a.action != "keep"] or ["-"]
    return [
        [dep.name],
        [dep.dependency.kind],
        [str(dep.dependency.port)],
        [f"{dep.weight.value:.3f}"],
        [str(dep.replication_factor)],
        [dep.mode],
        instances or ["-"],
        changes,
    ]


def _one_line_rows(rows: list[list[list[str]]], fixed: list[int]) -> list[str]:
    items = [[", ".join(row[6]), ", ".join(row[7])] for row in rows]
    width = max(len(pair[0]) for pair in items)
    return [
        _GAP.join(row[i][0].ljust(fixed[i]) for i in range(6)) + _GAP + pair[0].ljust(width) + _GAP + pair[1]
        for row, pair in zip(rows, items, strict=True)
    ]


def _wrapped_rows(header: list[list[str]], dependencies: list[DependencyPlan], fixed: list[int]) -> list[str]:
    """One line per instance (and per instance to decommission), its change beside it."""
    cells: list[list[tuple[str, str]]] = [[(header[6][0], header[7][0])]]
    for dep in dependencies:
        action = {a.host: a.action for a in dep.actions}
        lines = [(f"{i.role}@{i.host}/{i.zone}", _change(action.get(i.host, "keep"))) for i in dep.instances]
        lines += [(f"{a.role}@{a.host}/{a.zone}", "decommission") for a in dep.actions if a.action == "decommission"]
        cells.append(lines or [("-", "")])
    instances_width = max(len(pair[0]) for lines in cells for pair in lines)
    out: list[str] = []
    for row, lines in zip([header, *[_row(dep) for dep in dependencies]], cells, strict=True):
        for n, (instance, change) in enumerate(lines):
            left = _GAP.join((row[i][0] if n == 0 else "").ljust(fixed[i]) for i in range(6))
            out.append((left + _GAP + instance.ljust(instances_width) + _GAP + change).rstrip())
    return out


def _change(action: str) -> str:
    return "" if action == "keep" else action
