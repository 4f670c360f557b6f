"""The README cannot promise a command that fails: every ```bash block of README.md is run, in
README order, as a user would type it in a shell.

How the commands are run:
- in one scratch folder shared by all blocks (so `bench report runs/...` finds the runs that
  earlier blocks made), with `tests/`, `tools/` and `benchmarks/` of this checkout linked
  into it and this environment's `bench` first on PATH;
- through `SUBSTITUTIONS` below: data roots become the shared copies (`../shared`, `/data/iseg`),
  datasets that are not in `../shared/datasets` become GrabCut, heavy models become their
  smallest family member with the random official-format checkpoint of
  `golden/equivalence/*.pth`, a user's plugin becomes the test plugin, and install lines are
  dropped (this environment is already installed);
- with small limits injected to keep this test short: every `bench run` gets
  `--limit 1 --max-clicks 3` (one entry per dataset, three clicks), and `bench profile` gets
  `--limit 1 --clicks 2 --warmup 0`. The protocol is the same; only fewer instances and
  clicks are evaluated.

A block that cannot run here (real weights, a GPU, a server that never exits, the test suite
itself) is preceded in README.md by the line `<!-- readme-test: skip (REASON) -->`; it is
reported as skipped with that reason. Each command must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, shared_root

README = REPO / "README.md"
SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    commands: tuple[str, ...]
    skip: str | None


def bash_blocks(text: str) -> list[Block]:
    """Every ```bash block: its commands (comment-only lines dropped, `\\` continuations
    joined) and the reason of a skip marker on the closest non-blank line above it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or not match.group("lang"):
            i += 1
            continue
        start, lang = i, match.group("lang")
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if lang != "bash":
            continue
        above = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(above)
        commands, pending = [], ""
        for raw in body:
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            command = (pending + raw).strip()
            pending = ""
            if command and not command.startswith("#"):
                commands.append(command)
        blocks.append(Block(start + 1, tuple(commands), skip.group("reason") if skip else None))
    return blocks


def substitutions(shared: Path) -> list[tuple[str, str]]:
    """(regex, replacement) applied in order to every command."""
    equivalence = shared / "golden" / "equivalence"
    simpleclick = equivalence / "simpleclick_vit_xtiny448_random.pth"
    ritm = equivalence / "ritm_hrnet18s_random.pth"
    plugin = REPO / "tests" / "plugins" / "disk_painter.py"  # a method, not an oracle
    return [
        (r"(?<![\w/.-])\.\./shared\b", str(shared)),
        (r"/data/iseg\b", str(shared / "datasets")),
        # Datasets a user has but ../shared/datasets does not: GrabCut stands in.
        (r"--datasets\s+sbd,davis\b", "--datasets grabcut,davis"),
        (r"--datasets\s+sbd\b", "--datasets grabcut"),
        # Heavy models: the smallest of the family, random weights in the official format.
        (r"--model\s+simpleclick-vit-(b|l|h)\b", "--model simpleclick-vit-xt"),
        (r"--model\s+ritm-hrnet(18|32)\b", "--model ritm-hrnet18s"),
        (r"(--model\s+simpleclick-\S+.*--checkpoint\s+)\S+\.pth", rf"\g<1>{simpleclick}"),
        (r"(--model\s+ritm-\S+.*--checkpoint\s+)\S+\.pth", rf"\g<1>{ritm}"),
        (r"\bmy_method\.py:make_predictor\b", f"{plugin}:make_predictor"),
    ]


# Small limits so the whole README runs in about a minute (see the module docstring).
RUN_LIMITS = ("--limit", "1", "--max-clicks", "3")
PROFILE_LIMITS = ("--limit", "1", "--clicks", "2", "--warmup", "0")


def _inject(command: str) -> str:
    """Append the small limits to each `bench run` / `bench profile` of a command line
    (its trailing comment dropped), unless it sets them itself."""
    command = re.sub(r"\s+#.*$", "", command)  # README commands quote no '#'
    parts = re.split(r"(\s*&&\s*|\s*;\s*)", command)
    out = []
    for part in parts:
        text = part.rstrip()
        if re.match(r"^\s*(bench|python -m bench|torchrun .* -m bench)\s+run\b", text):
            extra = [w for w in RUN_LIMITS[::2] if w not in text]
            for flag in extra:
                text += f" {flag} {RUN_LIMITS[RUN_LIMITS.index(flag) + 1]}"
        elif re.match(r"^\s*bench\s+profile\b", text) and "--no-spc" not in text:
            for flag, value in zip(PROFILE_LIMITS[::2], PROFILE_LIMITS[1::2]):
                if flag not in text:
                    text += f" {flag} {value}"
        out.append(text)
    return "".join(out)


INSTALL = re.compile(r"^(\w+=\S*\s+)*(pip install|python tools/check_torch\.py)\b")
"""Install steps: dropped, since this environment is installed already and tests never
touch the network."""


def rewrite(command: str, shared: Path) -> str:
    steps = [s.strip() for s in command.split("&&")]
    command = " && ".join(s for s in steps if not INSTALL.match(s))
    for pattern, replacement in substitutions(shared):
        command = re.sub(pattern, replacement, command)
    return _inject(command)


BLOCKS = bash_blocks(README.read_text())


def test_the_readme_has_runnable_blocks_and_the_parser_reads_markers():
    assert sum(b.skip is None for b in BLOCKS) >= 4
    sample = (
        "```bash\nbench run --model x \\\n  --datasets demo   # note\n# only a comment\n```\n"
        "<!-- readme-test: skip (needs a GPU) -->\n\n```bash\nbench run --device cuda\n```\n"
        "```text\nnot a command\n```\n"
    )
    first, second = bash_blocks(sample)
    assert first.commands == ("bench run --model x    --datasets demo   # note",)
    assert first.skip is None and second.skip == "needs a GPU"
    assert rewrite("bench run --model simpleclick-vit-l --checkpoint w.pth", Path("/s")) == (
        "bench run --model simpleclick-vit-xt --checkpoint "
        "/s/golden/equivalence/simpleclick_vit_xtiny448_random.pth --limit 1 --max-clicks 3"
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    for name in ("tests", "tools", "benchmarks"):
        (root / name).symlink_to(REPO / name)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs(block: Block, sandbox: Path):
    if block.skip is not None:
        pytest.skip(block.skip)
    shared = shared_root()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BENCH_DATA_ROOT": "",
    }
    env.pop("BENCH_DATA_ROOT")
    for command in block.commands:
        line = rewrite(command, shared)
        if not line.strip():
            continue  # an install line, dropped
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {line}"],
            cwd=sandbox,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (
            f"README.md:{block.line}: `{command}`\nran as: {shlex.quote(line)}\n"
            f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
