"""`cbir undo` and `cbir history`: put a clean run's files back; list the runs."""

from __future__ import annotations

from pathlib import Path

from cbir.actions.clean import open_session
from cbir.actions.progress import QUIET, Progress
from cbir.moves.undo import clean_history, execute_undo, pick_run, plan_undo, restores_report


def undo_plan(index_dir: Path, run_id: int | None = None, progress: Progress = QUIET) -> dict:
    """`cbir undo --json` without --yes: what would go back where (default: the last run with files left)."""
    with open_session(index_dir, progress) as session:
        chosen = pick_run(session.journal, run_id)
        return restores_report(chosen, plan_undo(session.journal, session.store, chosen, session.roots),
                               dry_run=True)


def undo(index_dir: Path, run_id: int | None = None, progress: Progress = QUIET) -> dict:
    """`cbir undo --yes --json`: put the run's files back; what went back, and what could not, and why."""
    with open_session(index_dir, progress) as session:
        chosen = pick_run(session.journal, run_id)
        plan = plan_undo(session.journal, session.store, chosen, session.roots)
        progress.phase("restoring", len(plan))
        result = execute_undo(plan, session.journal, session.store, chosen, session.roots,
                              on_progress=progress.advance)
        return restores_report(chosen, result.restored + result.problems, dry_run=False)


def history(index_dir: Path) -> list[dict]:
    """`cbir history --json`: every clean run, oldest first."""
    return [r.as_dict() for r in clean_history(index_dir)]
