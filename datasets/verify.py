"""`bench datasets verify`: layout, counts and every bad file of a dataset copy.

It decodes each entry exactly as a run would (`SampleRef.load()`), so it says what a run
will do with each file:
* errors: the run would skip or fail that entry (unreadable, truncated, missing or
  mismatched mask, empty object), or the copy cannot give the paper's numbers (missing
  layout, counts or annotations that differ from the paper's copy);
* warnings: accepted by the official rule, so a run evaluates the entry, but a clean copy
  lacks them (mask values mapped by the threshold, colours outside the palette, hidden files,
  orphan or ambiguous masks, empty annotations, an image's EXIF Orientation other than 1).
  Warnings that a load produces are the samples' own `Sample.warnings`, so a run records
  exactly the same text.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import DatasetSpec, dataset_root
from bench.sample import Sample, SampleError, SampleRef


@dataclass(frozen=True)
class Problem:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True)
class DatasetReport:
    name: str
    root: Path | None
    layout_ok: bool
    images: int
    instances: int
    expected_images: int | None
    expected_instances: int | None
    problems: tuple[Problem, ...]  # errors
    fingerprint: str = ""  # hash of every instance's id, size and pixel counts
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """No error: a run evaluates every entry (warnings allowed)."""
        return self.layout_ok and not self.problems

    @property
    def clean(self) -> bool:
        """No error and no warning (`verify --strict`)."""
        return self.ok and not self.warnings


def _as_problem(error: SampleError) -> Problem:
    return Problem(error.path, error.problem)


def annotation_line(sample: Sample) -> str:
    """What the fingerprint hashes per instance: id, size, object and ignore pixel counts.

    Masks only: they are lossless files, while JPEG decoding may differ between libjpeg
    builds, so image pixels would make the fingerprint fragile.
    """
    h, w = sample.gt.shape
    return f"{sample.id} {h}x{w} {int((sample.gt == 1).sum())} {int((sample.gt == -1).sum())}\n"


def sample_warning(text: str, files: tuple[Path, ...]) -> Problem:
    """A `Sample.warnings` entry ("path: what") as a Problem naming that path."""
    for path in files:
        prefix = f"{path}: "
        if text.startswith(prefix):
            return Problem(str(path), text[len(prefix) :])
    return Problem(str(files[0]) if files else "", text)


def _check_entry(
    spec: DatasetSpec, ref: SampleRef
) -> tuple[list[str], list[Problem], list[Problem]]:
    """(fingerprint lines, errors, warnings) of one entry."""
    try:
        samples = ref.load()
        extra = [_as_problem(e) for e in spec.check_entry(ref)] if spec.check_entry else []
    except SampleError as error:
        return [], [_as_problem(error)], []
    except Exception as exc:  # a verify must name the file and go on, whatever broke
        where = ref.files[0] if ref.files else ref.id
        return [], [Problem(str(where), f"unexpected error: {exc!r}")], []
    errors = []
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        errors.append(Problem(str(ref.files[-1]), "duplicate instance ids in one entry"))
    files = tuple(p for s in samples for p in (s.mask_path, s.image_path) if p is not None)
    texts = dict.fromkeys(w for s in samples for w in s.warnings)  # one per image, in order
    warned = [sample_warning(t, files) for t in texts] + extra
    return [annotation_line(s) for s in samples], errors, warned


def verify_dataset(
    spec: DatasetSpec,
    data_root: Path | str | None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetReport:
    """Decode every entry once (streaming) and collect every error and warning; never raises
    for data."""

    found_warnings: list[Problem] = []

    def report(root, layout_ok, images=0, instances=0, problems=(), fingerprint=""):
        return DatasetReport(
            spec.name, root, layout_ok, images, instances,
            spec.expected_images, spec.expected_instances, tuple(problems), fingerprint,
            tuple(found_warnings),
        )  # fmt: skip

    try:
        root = dataset_root(spec, data_root)
    except FileNotFoundError as exc:
        return report(None, False, problems=[Problem(spec.folder, str(exc))])

    problems = [
        Problem(str(root / rel), "required path is missing")
        for rel in spec.layout
        if not (root / rel).exists()
    ]
    layout_ok = not problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hidden files are reported by check_layout
            if spec.check_layout is not None:
                found_warnings += [_as_problem(e) for e in spec.check_layout(root)]
            refs = spec.list_samples(root)
    except (OSError, ValueError) as exc:
        problems.append(Problem(str(root), f"cannot list samples: {exc}"))
        return report(root, False, problems=problems)

    instances = 0
    digest = hashlib.sha256()
    seen: set[str] = set()
    for done, ref in enumerate(refs):
        if progress is not None:
            progress(done, len(refs))
        if ref.id in seen:
            problems.append(Problem(str(ref.files[0]), f"entry id {ref.id!r} listed twice"))
        seen.add(ref.id)
        lines, entry_errors, entry_warnings = _check_entry(spec, ref)
        instances += len(lines)
        digest.update("".join(lines).encode())
        problems += entry_errors
        found_warnings += entry_warnings

    if spec.expected_images is not None and len(refs) != spec.expected_images:
        problems.append(
            Problem(str(root), f"{len(refs)} images listed, expected {spec.expected_images}")
        )
    if spec.expected_instances is not None and instances != spec.expected_instances:
        problems.append(
            Problem(str(root), f"{instances} instances found, expected {spec.expected_instances}")
        )
    fingerprint = digest.hexdigest()[:16]
    if spec.fingerprint and fingerprint != spec.fingerprint and not problems:
        problems.append(
            Problem(
                str(root),
                f"annotations differ from the reference copy (fingerprint {fingerprint}, "
                f"expected {spec.fingerprint}): a re-processed variant? see `bench datasets "
                "list -v`",
            )
        )
    return report(root, layout_ok, len(refs), instances, problems, fingerprint)
