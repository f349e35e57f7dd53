"""The tidy quality dataset: one CSV row per image, appended one block at a time, resumable.

Crash safety: the header is written atomically when the file is created; each block's rows go
out in one ``write`` on an ``O_APPEND`` descriptor followed by ``fsync``. A run killed mid-write
(even ``kill -9``, which can cut a large write short) leaves at worst a torn last line, which
resuming cuts off with a warning; complete rows of a cut block are kept and only the missing
(public, personal, seed, variant, x) keys are computed again, so no row is lost or duplicated.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from .._errors import InputError
from ._sweep import Sweep

__all__ = ["COLUMNS", "KEY_COLUMNS", "QualityDataset", "row_key"]

KEY_COLUMNS = ("public_prompt", "personal_prompt", "seed", "variant", "common_steps")
COLUMNS = (
    *KEY_COLUMNS,
    "negative_prompt",
    "similarity",
    "similarity_bin",
    "total_steps",
    "public_guidance_scale",
    "guidance_scale",
    "height",
    "width",
    "model",
    "dtype",
    "clip_alignment",
    "clip_image_similarity",
    "brisque",
    "image_rows",
    "block_id",
    "block_images",
    "block_rows",
    "block_encode_s",
    "block_public_s",
    "block_personal_s",
    "block_decode_s",
    "block_metrics_s",
    "image_s",
    "image_path",
    "device",
    "worker",
)
"""Dataset columns. ``similarity`` is the raw MiniLM cosine, ``similarity_bin`` its 0.1 bin;
``clip_image_similarity`` compares the image with the unshared (x = 0) image of the same personal
prompt, seed and variant; ``image_rows`` is the transformer rows of the image computed on its own
(the research code's per-image approach); ``block_rows`` the rows the engine computed for the
whole block; ``image_s`` the block's generation time divided by its images."""

_CONSISTENT = ("total_steps", "height", "width")


Key = tuple[str, str, int, str, int]


def row_key(row: Mapping[str, Any]) -> Key:
    """The identity of a row: (public, personal, seed, variant, x)."""
    return (
        str(row["public_prompt"]),
        str(row["personal_prompt"]),
        int(row["seed"]),
        str(row["variant"]),
        int(row["common_steps"]),
    )


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class QualityDataset:
    """A quality dataset file bound to a sweep: what is done, and appending what is new."""

    def __init__(self, path: str | Path, sweep: Sweep) -> None:
        self.path = Path(path)
        self.sweep = sweep
        self.done: set[Key] = set()

    def create(self) -> None:
        """Write a new file holding only the header (replacing any file there)."""
        atomic_write_text(self.path, ",".join(COLUMNS) + "\n")
        self.done = set()

    def read(self) -> set[Key]:
        """Read the rows already in the file (none if there is no file); return their keys.

        An existing file must have been written for a compatible sweep (same columns, total
        steps, size, and the same guidance for each variant name), else ``InputError``. A torn
        last line left by a killed run is cut off with a warning.
        """
        if not self.path.exists():
            self.done = set()
            return self.done
        if not self.path.is_file():
            raise InputError("not a file", file=self.path)
        self._check_header()  # before any repair: never cut a file that is not a dataset
        self._repair_tail()
        try:
            with open(self.path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    raise InputError("empty file (no header)", file=self.path)
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise InputError(
                        f"missing columns {missing}; not a profile-quality dataset (use another --out "
                        "or --overwrite)",
                        file=self.path,
                    )
                if tuple(header) != COLUMNS:
                    raise InputError(
                        "columns differ from this version's layout; use another --out or --overwrite",
                        file=self.path,
                    )
                rows = []
                for number, values in enumerate(reader, start=1):
                    if len(values) != len(COLUMNS):
                        raise InputError(
                            f"has {len(values)} fields, expected {len(COLUMNS)}",
                            file=self.path,
                            row=number,
                        )
                    rows.append(dict(zip(COLUMNS, values, strict=True)))
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text ({err})", file=self.path) from err
        except csv.Error as err:
            raise InputError(f"not valid CSV ({err})", file=self.path) from err
        self.done = self._check(rows)
        return self.done

    def _check_header(self) -> None:
        """Refuse, without touching it, a file whose first line is not this dataset's header."""
        with open(self.path, "rb") as fh:
            first = fh.readline(1 << 20)
        try:
            header = next(csv.reader([first.decode("utf-8-sig")]), [])
        except (UnicodeDecodeError, csv.Error):
            header = []
        if [h.strip() for h in header] != list(COLUMNS):
            raise InputError(
                "exists and is not a profile-quality dataset (its first line is not the dataset "
                "header); use another --out, or --overwrite to replace it",
                file=self.path,
            )

    def _repair_tail(self) -> None:
        """Cut a torn last line (a write interrupted by a kill) off the end of the file."""
        size = self.path.stat().st_size
        if size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            chunk = 1 << 16
            pos = size
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                data = fh.read(pos - start)
                cut = data.rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                pos = start
            else:
                keep = 0
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        warnings.warn(
            f"{self.path}: dropped a partial last line ({size - keep} bytes) left by an interrupted "
            "run; its image will be computed again",
            UserWarning,
            stacklevel=3,
        )

    def _check(self, rows: list[dict[str, str]]) -> set[Key]:
        sweep = self.sweep
        expected = {"total_steps": sweep.total_steps, "height": sweep.height, "width": sweep.width}
        variants = {v.name: v for v in sweep.variants}
        done: set[Key] = set()
        for number, row in enumerate(rows, start=1):
            for col in _CONSISTENT:
                try:
                    value = int(row[col])
                except ValueError as err:
                    raise InputError(
                        f"not an integer: {row[col]!r}", file=self.path, row=number, field=col
                    ) from err
                if value != expected[col]:
                    what = "mixed total steps: " if col == "total_steps" else ""
                    raise InputError(
                        f"{what}dataset has {col} {value}, the sweep {expected[col]}; use another --out",
                        file=self.path,
                        row=number,
                        field=col,
                    )
            variant = variants.get(row["variant"])
            if variant is not None:
                for col in ("public_guidance_scale", "guidance_scale"):
                    try:
                        value = float(row[col])
                    except ValueError:
                        raise InputError(
                            f"not a number: {row[col]!r}", file=self.path, row=number, field=col
                        ) from None
                    if value != getattr(variant, col):
                        raise InputError(
                            f"variant {variant.name!r} has {col} {row[col]} in the dataset but "
                            f"{getattr(variant, col)} in the sweep; rename the variant or use another --out",
                            file=self.path,
                            row=number,
                            field=col,
                        )
            try:
                key = row_key(row)
            except ValueError as err:
                raise InputError(f"bad key value ({err})", file=self.path, row=number) from err
            if key in done:
                raise InputError(f"duplicate row for {key}", file=self.path, row=number)
            done.add(key)
        return done

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows in one write and fsync; return how many were written."""
        rows = list(rows)
        if not rows:
            return 0
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for row in rows:
            key = row_key(row)
            if key in self.done:
                raise ValueError(f"row {key} is already in the dataset.")
            writer.writerow([_format(row.get(c)) for c in COLUMNS])
        data = buf.getvalue().encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.done.update(row_key(r) for r in rows)
        return len(rows)
