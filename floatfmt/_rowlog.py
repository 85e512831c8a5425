"""The report's record of finished tensors on disk: JSON lines written as each tensor finishes, read back to resume.

The first line names what the rows belong to (the source, the columns and every option that changes a number);
each further line holds one tensor's rows under every column, written whole and flushed. A run killed while
writing leaves at most one line without its newline: reading drops it (and cuts it off the file), so a partial
line can never pass for a row. Floats are written with ``repr`` precision, so the rows read back are the rows
written, bit for bit, and a resumed report equals an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["RowLog", "TensorFailed"]

FORMAT = "floatfmt report rows"
VERSION = 1


class TensorFailed(Exception):
    """A tensor's measurement failed inside a job: its name, the error, and the rows the job finished before it.

    Raised in worker processes too: its arguments are all it carries, so it pickles."""

    def __init__(self, tensor: str, message: str, done: list[Any]) -> None:
        super().__init__(tensor, message, done)
        self.tensor, self.message, self.done = tensor, message, done


class RowLog:
    """An append-only JSON-lines file of finished tensors' rows for one report."""

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any], *, resume: bool) -> None:
        self.path = Path(path)
        self.header = json.loads(json.dumps({"format": FORMAT, "version": VERSION, **header}))
        self.done: dict[str, list[dict[str, Any]]] = {}
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory; output= needs a file path for the report's rows")
        if resume and self.path.exists():
            self.done = self._read()
            self._file: IO[str] = self.path.open("a", encoding="utf-8")
        else:
            self._file = self.path.open("w", encoding="utf-8")
            self._write(self.header)

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]  # a last line without its newline was cut short: drop it
        if len(complete) != len(data):
            with self.path.open("r+b") as file:
                file.truncate(len(complete))
        lines = complete.decode("utf-8").splitlines()
        if not lines:
            raise ValueError(f"{self.path} holds no report header; delete it or resume=False to start afresh")
        header = self._parse(lines[0], 1)
        if header != self.header:
            changed = sorted(k for k in set(header) | set(self.header) if header.get(k) != self.header.get(k))
            raise ValueError(
                f"{self.path} holds rows of another report (different {', '.join(changed)}); "
                "give another output path, or resume=False to overwrite it"
            )
        done: dict[str, list[dict[str, Any]]] = {}
        for number, line in enumerate(lines[1:], start=2):
            record = self._parse(line, number)
            if not isinstance(record, dict) or not isinstance(record.get("tensor"), str):
                raise ValueError(f"{self.path}, line {number}: not a tensor's rows; the file is not a report log")
            done[record["tensor"]] = record["rows"]
        return done

    def _parse(self, line: str, number: int) -> Any:
        try:
            return json.loads(line)
        except ValueError as error:
            raise ValueError(f"{self.path}, line {number}: {error}; the file is damaged, delete it") from None

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def add(self, tensor: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record one finished tensor's rows (every column)."""
        self._write({"tensor": tensor, "rows": list(rows)})

    def close(self) -> None:
        self._file.close()
