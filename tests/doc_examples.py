"""Comparing what a documented command prints with what the docs show for it.

Docs show real outputs with the values that differ on every run (stamps, versions, ids, dates,
the store's incarnation in origins and inside cursors) as they were, JSON broken into lines,
and ``…`` for left-out members; the comparison masks the first, ignores the layout and lets
``…`` stand for anything. Headers the docs leave out
(``date``, ``content-length``, ``x-request-id``) are dropped from both sides.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from breakwater.core import cursor as cursor_mod
from breakwater.core.canonical import dumps_canonical

INCARNATION = re.compile(r"~[0-9a-f]{12}\b")


def _cursor(match: re.Match[str]) -> str:
    """A cursor shown as its vector with the incarnations masked: the seqs still compare."""
    vector = dumps_canonical(cursor_mod.decode(match[0])).decode()
    return f"<cursor {INCARNATION.sub('~<incarnation>', vector)}>"


VOLATILE: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"(?im)^(date|content-length|x-request-id): [^\n]*\n"), ""),
    (re.compile(re.escape(cursor_mod.PREFIX) + r"[A-Za-z0-9_-]+"), _cursor),
    (INCARNATION, "~<incarnation>"),
    (re.compile(r"\d{13}-\d{4}-[A-Za-z0-9._-]+"), "<hlc>"),
    (re.compile(r'"(version|current_version)":"[0-9a-f]{20}"'), r'"\1":"<version>"'),
    (re.compile(r'etag: "[0-9a-f]{20}"'), 'etag: "<version>"'),
    (re.compile(r'"owner":"[0-9a-f]{24}"'), '"owner":"<uid>"'),
)


def masked(text: str) -> str:
    """``text`` with the run-dependent values replaced and the layout whitespace removed (the
    docs break long JSON into lines and space it; the node answers compact JSON)."""
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    text = re.sub(r"\n\s*", "", text.strip())
    return re.sub(r"([:,\[{])\s+", r"\1", text)


def matches(shown: str, actual: str) -> bool:
    """Whether ``actual`` is what the docs show, ``…`` standing for left-out members."""
    parts = [re.escape(part) for part in masked(shown).split("…")]
    return re.fullmatch(".*?".join(parts), masked(actual), flags=re.S) is not None


_STEP_END = "@@ step done @@"


def run_in_one_shell(commands: Sequence[str], cwd: Path) -> list[str]:
    """What each of ``commands`` printed, run in order in one bash session (later commands use
    the variables and directory earlier ones set); fails on a command that fails the shell."""
    script = "\n".join(f"{command}\necho\necho '{_STEP_END}'" for command in commands)
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    outputs = done.stdout.split(_STEP_END + "\n")
    assert len(outputs) == len(commands) + 1 and outputs[-1] == "", done.stdout
    return outputs[:-1]
