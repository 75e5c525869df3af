"""What each task waits for, and what is wrong with the `depends_on` column.

Pure functions of plain `Task`/`Objective` values: no threads, no I/O. The
validator reports `dependency_problems` before any pool exists, and the
planner uses `expand_dependencies` to count each task's unfinished parents.

A `depends_on` entry is either `OBJ.TASK` (that task) or `OBJ` (every task of
that chapter, e.g. an executive summary after all chapters). An objective_id
may not contain `.` and no id may contain `,` (the sheet validator enforces
it), so an entry is never ambiguous: a task key splits at its first dot.

Ids are case-sensitive, here as in `results["OBJ.TASK"]` in a prompt: `o1.t2`
is not `O1.T2`. The "did you mean" hint ignores case, though, and names the id
exactly as the sheet spells it, so the analyst can type it as shown.
"""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Mapping, Sequence

from ..models import Objective, Task

__all__ = ["dependency_problems", "expand_dependencies", "format_cycle"]


def _tasks_by_objective(tasks: Sequence[Task]) -> dict[str, list[Task]]:
    grouped: dict[str, list[Task]] = {}
    for task in tasks:
        grouped.setdefault(task.objective_id, []).append(task)
    return grouped


def expand_dependencies(tasks: Sequence[Task]) -> dict[str, tuple[str, ...]]:
    """Map each task key (`OBJ.TASK`) to the task keys it waits for, in sheet order.

    `OBJ` expands to every task of that objective among `tasks`, so pass the
    tasks that will actually run. Duplicates are dropped, a task never waits
    for itself (a self-dependency is reported by `dependency_problems`, and
    keeping it here would only deadlock a scheduler), and references to
    nothing are ignored: reporting them is `dependency_problems`' job.
    """
    position = {task.key: i for i, task in enumerate(tasks)}
    by_objective = _tasks_by_objective(tasks)
    expanded: dict[str, tuple[str, ...]] = {}
    for task in tasks:
        keys: set[str] = set()
        for entry in task.depends_on:
            if entry in position:
                keys.add(entry)
            elif entry in by_objective:
                keys.update(t.key for t in by_objective[entry])
        keys.discard(task.key)
        expanded[task.key] = tuple(sorted(keys, key=position.__getitem__))
    return expanded


def format_cycle(keys: Sequence[str]) -> str:
    """`A.1 -> B.2 -> A.1`: each task waits for the next one."""
    return " -> ".join([*keys, keys[0]])


def _suggestion(entry: str, task: Task, known: Mapping[str, str]) -> str:
    """` (did you mean O1.T2?)`, or "". `known` maps each id's casefold to the id as spelt."""
    own = {task.key, task.objective_id}  # never suggest the task itself
    folded = entry.casefold()
    exact = known.get(folded)
    if exact is not None and exact not in own:
        return f" (did you mean {exact}? ids are case-sensitive)"
    close = [known[c] for c in difflib.get_close_matches(folded, known, n=3) if known[c] not in own]
    return f" (did you mean {close[0]}?)" if close else ""


def _reference_problems(task: Task, task_keys: set[str], objective_ids: set[str], known: Mapping[str, str]) -> list[str]:
    problems = []
    for entry in task.depends_on:
        if entry == task.key:
            problems.append(f"task {task.key} depends on itself — remove {entry} from depends_on")
        elif entry == task.objective_id:
            problems.append(
                f"task {task.key} depends on its own objective {entry}, which includes itself — "
                f"list the tasks it needs (like {entry}.<task_id>) instead"
            )
        elif entry not in task_keys and entry not in objective_ids:
            problems.append(
                f"unknown dependency {entry!r}{_suggestion(entry, task, known)} — "
                "use OBJ.TASK for a task or an objective_id for a whole chapter"
            )
    return problems


def _find_cycles(graph: Mapping[str, tuple[str, ...]], position: Mapping[str, int]) -> list[list[str]]:
    """Every separate cycle, each as keys where each waits for the next.

    `graphlib` reports one cycle per `prepare()`; removing that cycle's tasks
    and asking again finds the others without reporting one tangle many times.
    """
    remaining = {key: set(parents) for key, parents in graph.items()}
    cycles: list[list[str]] = []
    while True:
        try:
            graphlib.TopologicalSorter(remaining).prepare()
            return cycles
        except graphlib.CycleError as error:
            # graphlib lists the cycle so that each node precedes (is waited for by)
            # the next, first == last; reverse it to read as "waits for".
            found = list(reversed(error.args[1][:-1]))
            start = min(range(len(found)), key=lambda i: position.get(found[i], len(position)))
            cycles.append(found[start:] + found[:start])
            for key in found:
                remaining.pop(key, None)
            for parents in remaining.values():
                parents.difference_update(found)


def dependency_problems(tasks: Sequence[Task], objectives: Sequence[Objective]) -> list[tuple[Task, str]]:
    """Unknown ids, self-dependencies and cycles, each paired with the task to blame.

    A cycle is reported once, on its task that comes first in the sheet, and
    names the whole loop (`A.1 -> B.2 -> A.1`) so the analyst can pick which
    dependency to drop.
    """
    task_keys = {task.key for task in tasks}
    objective_ids = {objective.objective_id for objective in objectives}
    by_key = {task.key: task for task in tasks}
    position = {task.key: i for i, task in enumerate(tasks)}
    # once: suggestions for 10,000 tasks must not sort 10,000 times. Ids that differ only
    # in case (legal, if unwise) keep the first in sorted order as the suggestion.
    known: dict[str, str] = {}
    for key in sorted(task_keys | objective_ids):
        known.setdefault(key.casefold(), key)
    problems: list[tuple[Task, str]] = []
    for task in tasks:
        problems.extend((task, message) for message in _reference_problems(task, task_keys, objective_ids, known))
    for cycle in _find_cycles(expand_dependencies(tasks), position):
        problems.append(
            (by_key[cycle[0]], f"dependency cycle: {format_cycle(cycle)} — each waits for the next; remove one of these dependencies")
        )
    problems.sort(key=lambda item: position[item[0].key])
    return problems
