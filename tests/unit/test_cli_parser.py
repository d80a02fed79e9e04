"""`main` builds only the parsers of the module that registers the command it is given
(``cli.COMMANDS``); for that command they must parse, help and fail exactly as the full
parser does, and everything else must still get the full parser."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from camvault import cli

T0, T1 = "2026-11-20T08:00:00Z", "2026-11-20T09:00:00+01:00"
# one command line per sub-command, with its required arguments and a few options
ARGV = {
    "ingest": ["ingest", "--camera", "dock-2", "--start", T0, "--json", "a.mp4"],
    "upload": ["upload", "--once", "--lock-timeout", "5"],
    "run": ["run", "--no-demo", "--demo-segment-seconds", "4"],
    "db": ["db", "migrate", "--json"],
    "cameras": ["cameras", "add", "dock-2", "--url", "rtsp://cam/1", "--disabled"],
    "recordings": ["recordings", "list", "--camera", "dock-2", "--start", T0, "--end", T1],
    "status": ["status", "--json"],
    "reconcile": ["reconcile"],
    "users": ["users", "add", "alice", "--admin"],
    "groups": ["groups", "add-member", "ops", "alice"],
    "grants": ["grants", "add", "--user", "alice", "--camera", "dock-2"],
    "tokens": ["tokens", "revoke", "7"],
    "serve": ["serve"],
    "record": ["record"],
    "bucket": ["bucket", "apply"],
    "retention": ["retention", "sync"],
    "restore": ["restore", "request", "42", "--tier", "Bulk"],
    "nodes": ["nodes", "drain", "node-1"],
    "export": ["export", "--camera", "dock-2", "--start", T0, "--end", T1, "-o", "out.mp4"],
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every nested sub-parser, by its path of command words."""
    for name, sub in _subparsers(parser).items():
        yield (*path, name), sub
        yield from _walk(sub, (*path, name))


def test_the_index_names_every_command_and_the_module_that_registers_it() -> None:
    assert sorted(cli.COMMANDS) == sorted(_subparsers(cli.build_parser()))
    assert set(cli.COMMANDS.values()) == set(cli.COMMAND_MODULES)
    for module in cli.COMMAND_MODULES:
        registered = _subparsers(cli.build_parser((module,)))
        assert sorted(registered) == sorted(c for c, m in cli.COMMANDS.items() if m == module)


def test_every_command_has_a_command_line_here() -> None:
    assert sorted(ARGV) == sorted(cli.COMMANDS)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_the_lazy_parser_parses_as_the_full_one(command: str) -> None:
    argv = ["-c", "x.toml", *ARGV[command]]
    module = cli.command_module(argv)
    assert module == cli.COMMANDS[command]
    lazy = cli.build_parser((module,)).parse_args(argv)
    assert lazy.command == command
    assert lazy == cli.build_parser().parse_args(argv)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_the_lazy_parser_helps_as_the_full_one(command: str) -> None:
    def helps(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], str]:
        return {path: p.format_help() for path, p in _walk(parser) if path[0] == command}

    full = helps(cli.build_parser())
    assert full  # the command and each of its actions
    assert helps(cli.build_parser((cli.COMMANDS[command],))) == full


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["-c", "x.toml"],
        ["-cx.toml"],
        ["--config", "x.toml"],
        ["--config=x.toml"],
        ["-c", "export"],  # a config file named like a command is still the config
        ["-v"],
        ["-vv"],
        ["--verbose"],
        ["-v", "--config", "x.toml", "--verbose"],
    ],
)
def test_the_command_is_found_after_the_global_options(options: list[str]) -> None:
    argv = [*options, "ingest", "--camera", "dock-2", "a.mp4"]
    assert cli.command_module(argv) == "archive"
    lazy = cli.build_parser(("archive",)).parse_args(argv)
    assert lazy.command == "ingest"
    assert lazy == cli.build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h", "ingest"],
        ["--version"],
        ["-c", "x.toml", "ingset", "a.mp4"],  # misspelt
        ["-c"],
        ["-c", "-v", "ingest"],
        ["--conf", "x.toml", "ingest"],  # abbreviated: argparse accepts it, we do not look
        ["-vc", "x.toml", "ingest"],
        ["--", "ingest"],
        ["--verbose=2", "ingest"],
    ],
)
def test_anything_else_gets_the_full_parser(argv: list[str]) -> None:
    assert cli.command_module(argv) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "x.toml", "ingset", "a.mp4"],  # unknown: the full list of choices
        ["-c"],
        ["users", "frob"],  # lazy: an unknown action of a known command
        ["-v", "ingest", "--bogus"],
        ["export", "--camera", "dock-2"],  # missing required options
    ],
)
def test_bad_command_lines_fail_as_with_the_full_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as full:
        cli.build_parser().parse_args(argv)
    expected = capsys.readouterr().err
    with pytest.raises(SystemExit) as got:
        cli.main(argv)
    assert got.value.code == full.value.code == 2
    assert capsys.readouterr().err == expected


def test_an_unknown_command_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["-c", "x.toml", "ingset", "a.mp4"])
    err = capsys.readouterr().err
    assert "invalid choice: 'ingset'" in err
    assert all(f"'{command}'" in err for command in cli.COMMANDS), err


@pytest.mark.parametrize("argv", [["--version"], ["ingest", "--bogus"], ["reconcile", "-h"]])
def test_main_restores_the_gc_threshold_it_raised_while_parsing(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = gc.get_threshold()
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert gc.get_threshold() == before


def test_main_called_with_arguments_keeps_the_gc_threshold(tmp_path: Path) -> None:
    """Only the process's own ``ingest`` / ``upload`` (``fast_exit``) keep it raised."""
    config = tmp_path / "camvault.toml"
    config.write_text(f'[spool]\ndir = "{tmp_path}/spool"\n[[cameras]]\nid = "dock-2"\n')
    before = gc.get_threshold()
    code = cli.main(["-c", str(config), "ingest", "--camera", "dock-2", str(tmp_path / "no")])
    assert code == cli.EXIT_INPUT
    assert gc.get_threshold() == before
