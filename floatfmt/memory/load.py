"""Models by name, by ``config.json``, or from a checkpoint directory's headers."""

from __future__ import annotations

import difflib
import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from floatfmt.memory.model import ModelSpec, UnsupportedModelError

__all__ = ["load_model", "preset_source", "presets"]


@functools.cache
def _presets() -> dict[str, dict[str, Any]]:
    text = resources.files("floatfmt.memory").joinpath("presets.json").read_text(encoding="utf-8")
    loaded: dict[str, dict[str, Any]] = json.loads(text)
    return loaded


def presets() -> list[str]:
    """Names of the shipped model presets (the weight-defining fields of each model's official config.json).

    Example:
        >>> from floatfmt.memory import presets
        >>> "deepseek-r1" in presets() and "llama-3.1-405b" in presets()
        True
    """
    return list(_presets())


def preset_source(name: str) -> str:
    """Where a preset's config comes from (its ``config.json`` on the Hugging Face hub)."""
    return str(_presets()[name]["source"])


@functools.cache
def _by_repository() -> dict[str, str]:
    """Preset names by the Hugging Face repository their config comes from (``org/name``, lower case), and by
    that repository's bare name (``llama-3.1-8b`` for ``meta-llama/Llama-3.1-8B``)."""
    names: dict[str, str] = {}
    for name, entry in _presets().items():
        repository = str(entry["source"]).removeprefix("https://huggingface.co/").split("/blob/")[0].lower()
        names.setdefault(repository, name)
        names.setdefault(repository.split("/")[-1], name)
    return names


def load_model(name_or_path: str | os.PathLike[str]) -> ModelSpec:
    """A model from a preset name (or the Hugging Face repository it comes from: ``meta-llama/Llama-3.1-8B``),
    a ``config.json`` path, or a checkpoint directory holding one.

    Example:
        >>> from floatfmt.memory import load_model
        >>> model = load_model("llama-3.1-8b")
        >>> f"{model.num_params:,}"
        '8,030,261,248'

    Raises:
        FileNotFoundError: for a path with no ``config.json``.
        UnsupportedModelError: (a ``ValueError``) for an unknown preset or architecture.
    """
    text = os.fspath(name_or_path)
    preset = text.lower() if text.lower() in _presets() else _by_repository().get(text.lower().strip("/"))
    if preset is not None and not Path(text).exists():  # a preset name, or the hub repository it comes from
        return ModelSpec.from_config(_presets()[preset]["config"], name=preset)
    path = Path(text)
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"no config.json at {path}")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnsupportedModelError(f"{path}: not a valid JSON config ({error})") from None
        if not isinstance(config, dict):
            raise UnsupportedModelError(f"{path}: a config must be a JSON object")
        return ModelSpec.from_config(config, name=str(path.parent.name or path))
    close = difflib.get_close_matches(text.lower(), list(_presets()), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnsupportedModelError(
        f"{text!r} is neither a preset nor a config.json or checkpoint directory.{hint} "
        "floatfmt.memory.presets() lists the presets."
    )
