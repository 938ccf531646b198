"""The ``cbir`` command line: the group, its commands (one module per family, parse and print only), and
``main``, which turns every failure into one line on stderr and an exit code."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from cbir import __version__
from cbir.errors import CbirError, from_os_error
from cbir.text import one_line, shortened
from indexer.decode_budget import keep_large_allocations_apart

# Every command: its module, its function, and the line `cbir --help` shows for it. A command's module is
# imported only when that command runs (click's lazy subcommands), so `cbir --help` imports none of the
# library; tests/test_cli_help.py checks that each line here is the command's own first docstring line.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "index": ("cbir.cli.index", "index_cmd",
             "Embed every image under FOLDERS into the index; re-runs only touch what changed."),
    "query": ("cbir.cli.query", "query_cmd",
             "Print the K indexed images most similar to IMAGE, best first, as score<TAB>path."),
    "find": ("cbir.cli.query", "find_cmd",
            "Print indexed images tagged with every one of WORDS, best first, as score<TAB>path."),
    "tags": ("cbir.cli.query", "tags_cmd",
            "Print hashtags for each image, indexed or not, as `#tabby #cat #animal<TAB>path` lines."),
    "status": ("cbir.cli.status", "status_cmd",
              "Where the index is, how many images it holds, which model, and its size on disk."),
    "engines": ("cbir.cli.status", "engines_cmd",
                "The inference engines on this machine: how faithful and fast each is, and which one `auto` runs."),
    "clean": ("cbir.cli.clean", "clean_cmd",
             "Move images of the given categories into per-category folders (a dry run unless --yes)."),
    "undo": ("cbir.cli.clean", "undo_cmd",
            "Put back the files of clean run RUN_ID (default: the last run with files to put back)."),
    "history": ("cbir.cli.clean", "history_cmd", "List clean runs: id, time, state, files moved, undone, categories."),
    "duplicates": ("cbir.cli.duplicates", "duplicates_cmd",
                  "List groups of duplicates among indexed images, the copy to keep first, and why."),
    "watch": ("cbir.cli.watch", "watch_cmd",
              "Keep the index current: index photos as they are added, changed, moved or deleted under FOLDERS."),
    "serve": ("cbir.cli.serve", "serve_cmd",
             "Browse, search, clean and de-duplicate the index in a web browser, with an HTTP API under /api/."),
    "train": ("cbir.cli.model", "train_cmd",
             "Fine-tune ResNet-50 on DATA_DIR (one subfolder per class) and write a model to --out."),
    "evaluate": ("cbir.cli.model", "evaluate_cmd",
                "Measure a model on DATA_DIR (one subfolder per class): classification and retrieval quality."),
}


class LazyGroup(click.Group):
    """A group whose commands load on first use; its help lists them from ``COMMANDS`` alone."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, shortened(line, limit)) for name, (_, _, line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cbir")
def cli() -> None:
    """cbir: find similar images and clean up photo folders with a ResNet-50."""


def main(args: list[str] | None = None) -> None:
    """Entry point: run the CLI, mapping every failure to one line on stderr and an exit code.

    Library code raises typed errors (cbir.errors); anything else is a bug or an environment
    problem, reported in one line too. ``CBIR_DEBUG=1`` shows the traceback.
    """
    keep_large_allocations_apart()  # memory a large decode frees goes back to the system
    try:
        cli.main(args, standalone_mode=False)
    except CbirError as exc:
        _fail(str(exc), exc.exit_code, exc)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("cbir: interrupted; what was committed before it is kept (index batches, clean journal); "
                   "a half-trained model is discarded; an interrupted clean or undo is settled by the next one",
                   err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:
        typed = from_os_error(exc, exc.filename or ".", "this command")
        if typed is not None:
            _fail(str(typed), typed.exit_code, exc)
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1, exc)
    except Exception as exc:  # a bug: still one line, with a way to see more
        _fail(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(this is a bug in cbir; set CBIR_DEBUG=1 to see where)", 1, exc)


def _fail(message: str, code: int, exc: BaseException | None = None) -> None:
    if exc is not None and os.environ.get("CBIR_DEBUG", "").strip() not in ("", "0"):
        traceback.print_exception(exc)
    click.echo(f"cbir: error: {one_line(message)}", err=True)
    sys.exit(code)
