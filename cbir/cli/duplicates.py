"""`cbir duplicates` (parse and print; the job is in cbir.actions.duplicates)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cbir.actions import duplicates as dup
from cbir.cli.clean import fail_if_some_not_moved, print_moves
from cbir.cli.common import BarProgress, echo_err, index_option, json_option, null_option, quiet_option
from cbir.cli.output import emit
from cbir.config import resolve_index_dir
from cbir.errors import UsageError


@click.command("duplicates")
@click.option("--in", "in_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Only indexed images under this folder (repeatable; default: every indexed folder).")
@click.option("--level", type=click.Choice(["exact", "near", "similar"]), default="near", show_default=True,
              help="exact: the same bytes; near: the same photo re-encoded, resized, cropped, turned, "
                   "tone-edited, recoloured or watermarked; similar: also burst shots and the same scene a "
                   "moment apart.")
@click.option("--prefer", "prefer", multiple=True, type=click.Path(file_okay=False),
              help="Keep the copy in this folder when a group has one there (repeatable), before any other rule.")
@click.option("--move-extras", is_flag=True,
              help="Move every copy but the best of each group into a 'duplicates' folder (a dry run unless "
                   "--yes); `cbir undo` puts them back.")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="With --move-extras: put the 'duplicates' folder here (default: inside the indexed folder "
                   "each copy belongs to).")
@click.option("--yes", is_flag=True, help="With --move-extras: really move the files.")
@click.option("--sheet", "sheet", type=click.Path(dir_okay=False), default=None,
              help="Also write a contact sheet of the groups to this PNG (the keeper marked, similarity and "
                   "reason under each).")
@index_option
@quiet_option("No progress bar and no per-group lines on stderr.")
@json_option
@null_option
def duplicates_cmd(in_dirs: tuple[str, ...], level: str, prefer: tuple[str, ...], move_extras: bool,
                   dest: str | None, yes: bool, sheet: str | None, index_dir: str | None, quiet: bool,
                   as_json: bool, null: bool) -> None:
    """List groups of duplicates among indexed images, the copy to keep first, and why.

    Prints group<TAB>keep|copy<TAB>similarity<TAB>path lines, each group as soon as it is final. With
    --move-extras it prints the plan: every copy but the best into a 'duplicates' folder; add --yes to
    move them, journaled like clean (`cbir undo` puts them back).
    """
    scope = [str(Path(d).expanduser().resolve()) for d in in_dirs]
    prefer_paths = [str(Path(d).expanduser().resolve()) for d in prefer]
    dest_path = str(Path(dest).expanduser().resolve()) if dest else None
    if (dest or yes) and not move_extras:
        raise UsageError("--dest and --yes go with --move-extras")
    with BarProgress(quiet) as bar:
        if move_extras:
            moves = dup.move_duplicates(resolve_index_dir(index_dir), level, scope=scope, prefer=prefer_paths,
                                        dest=dest_path, apply=yes, sheet=sheet, progress=bar.progress())
        else:
            # Each group is printed as soon as it is final, so the first ones come long before the scan ends.
            def print_group(group: dict) -> None:
                def lines() -> None:
                    for member in group["members"]:
                        emit([str(group["group"]), member["role"], f"{member['similarity']:.4f}"], [member["path"]],
                             null)

                bar.out(lines)

            report = dup.duplicates(resolve_index_dir(index_dir), level, scope=scope, prefer=prefer_paths,
                                    sheet=sheet, progress=bar.progress(), on_group=None if as_json else print_group)
    if move_extras:
        print_moves(moves, as_json, null)
        fail_if_some_not_moved(moves)
        return
    if as_json:
        click.echo(json.dumps(report, indent=2))
    echo_err(f"cbir: {len(report['groups'])} group(s), {report['extra_copies']} extra copies among "
             f"{report['images']} image(s) (level {report['level']}, {report['checked_pairs']} of "
             f"{report['candidate_pairs']} candidate pairs checked, {report['seconds']:.1f}s)")
