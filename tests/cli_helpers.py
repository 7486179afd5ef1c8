"""What the CLI tests share (``tests`` is on pytest's ``pythonpath``: ``from cli_helpers import run``)."""

from __future__ import annotations

import pytest

from spikegen.cli import main


def run(argv: list, capsys) -> tuple[int, str, str]:
    """Run ``spikegen ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    code = e.value.code if isinstance(e.value.code, int) else (0 if e.value.code is None else 1)
    return code, out.out, out.err
