"""The ``floatfmt`` command: a thin layer that parses arguments, calls the library and prints.

floatfmt explain "0 1011 011" e4m3
floatfmt encode e4m3 0.3 22 1000 --rounding toward_zero --overflow saturate
floatfmt decode e4m3 0x5B 91 0b01111110
floatfmt table e2m1 --json
floatfmt report model.safetensors --schemes fp8_e4m3_block128,mxfp4,nvfp4,int4_g128 --workers 2
floatfmt compare model.safetensors model-Q4_K_M.gguf
floatfmt memory deepseek-r1 --weights fp8_e4m3_block128 --kv-cache bf16 --context 131072 --tp 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import floatfmt
from floatfmt._display import json_float
from floatfmt._options import NAN_POLICIES, OVERFLOWS, ROUNDINGS

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["main", "main_entry"]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that the command stops its workers and says what it kept."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class _EngineNames(Sequence[str]):
    """The ``--engine`` choices, read from the memory layer only when argparse looks at them: importing it at start
    would cost every command (``explain`` included) its import time."""

    def _names(self) -> list[str]:
        from floatfmt.memory.engines import ENGINES

        return list(ENGINES)

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0; 1 for a tensor that failed; 2 for a usage or input error;
    130 after Ctrl-C, 141 when the reader of its output went away (``| head``) and 143 after SIGTERM, as shells
    report them)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("\nfloatfmt: interrupted", file=sys.stderr)
        return 130
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        output = args.run(args)
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"floatfmt: error: {error}", file=sys.stderr)
        return 2
    except floatfmt.ReportError as error:
        print(f"floatfmt: error: {error}{_kept(args)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as stop:
        status = 130 if isinstance(stop, KeyboardInterrupt) else 143
        print(f"\nfloatfmt: interrupted{_kept(args)}", file=sys.stderr)
        return status
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    try:
        if args.json:
            print(json.dumps(output if not hasattr(output, "as_dict") else output.as_dict(), indent=2))
        else:
            print(output if isinstance(output, str) else _text(output))
        sys.stdout.flush()
    except BrokenPipeError:  # `floatfmt table bf16 | head`: the reader had enough; say nothing, as cat does
        _stop_writing()
        return 141
    except KeyboardInterrupt:
        print("\nfloatfmt: interrupted", file=sys.stderr)
        return 130
    return 0


def _stop_writing() -> None:
    """Point stdout at the null device, so that Python's own flush at exit does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # a stdout without a file descriptor (captured)
        pass


def _kept(args: argparse.Namespace) -> str:
    path = getattr(args, "output", None)
    if not path:
        return ""
    return f"; every finished tensor's rows are in {path} (the same command with --resume goes on from there)"


def main_entry() -> None:
    """The console script: ``main`` with the exit status passed to the shell."""
    raise SystemExit(main())


EXAMPLES = {
    "formats": ["", "--json"],
    "schemes": ["", "--json"],
    "presets": [""],
    "gpus": [""],
    "info": ["e4m3", "bf16 --json"],
    "explain": ['"0 1011 011" e4m3', "22.5 e4m3 --rounding toward_zero", "0x7F e5m2"],
    "encode": ["e4m3 0.3 22 500 --overflow saturate", "e2m1 1.75 --rounding stochastic --seed 1"],
    "decode": ["e4m3 0x5B 91 0b01011011", "bf16 0x3F80"],
    "table": ["e2m1", "e4m3 --json"],
    "report": ["model.safetensors", "./checkpoint --schemes q4_k,nvfp4,mxfp4 --sample 0.05",
               "./checkpoint --output rows.jsonl --resume --workers 2"],
    "compare": ["./Llama-3.1-8B model-Q4_K_M.gguf", "./DeepSeek-R1-bf16 ./DeepSeek-R1 --summary-only"],
    "memory": ["deepseek-r1 --context 128k", "meta-llama/Llama-3.1-70B --weights Q4_K_M --gpu 4090 --engine llama.cpp",
               "llama-3.1-8b --train adam --lora-rank 16 --gpu H100 --json"],
}  # fmt: skip
"""Two or three invocations per command, shown at the end of its --help."""

WHERE_LISTS = (
    "FMT is a format name or alias (`floatfmt formats`); SCHEME a quantization scheme or llama.cpp file type\n"
    "(`floatfmt schemes`); MODEL a preset (`floatfmt presets`), its Hugging Face id, a config.json or a checkpoint;\n"
    "GPU a name as you type it (`floatfmt gpus`) or custom:GIB."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floatfmt", description="What a number is in each storage format.")
    parser.add_argument("--version", action="version", version=f"floatfmt {floatfmt.__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Any, codec_options: bool = False) -> argparse.ArgumentParser:
        examples = "\n".join(f"  floatfmt {name} {example}".rstrip() for example in EXAMPLES.get(name, ()))
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"examples:\n{examples}\n\n{WHERE_LISTS}" if examples else WHERE_LISTS,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON")
        if codec_options:
            sub.add_argument("--rounding", choices=ROUNDINGS, default="nearest_even")
            sub.add_argument("--overflow", choices=[o for o in OVERFLOWS], default="ieee")
            sub.add_argument("--nan", choices=NAN_POLICIES, default="error", help="NaN into a format without NaN")
            sub.add_argument("--seed", type=int, default=0, help="seed of stochastic rounding")
        sub.set_defaults(run=run)
        return sub

    command("formats", "list every format with its aliases", _formats)
    command(
        "schemes", "list the quantization schemes --schemes and --weights take (llama.cpp file types too)", _schemes
    )
    command("presets", "list the model presets `floatfmt memory` takes, with their sources", _presets)
    command("gpus", "list the GPUs --gpu takes, with memory, bandwidth and throughput", _gpus)
    command("info", "summarise a format", _info).add_argument("format", metavar="FMT")
    explain = command("explain", "take a code apart, or explain how a value is stored", _explain, codec_options=True)
    explain.add_argument("spec", metavar="SPEC", help="bits ('0 1011 011', 0b01011011, 0x5B) or a number (22.5)")
    explain.add_argument("format", metavar="FMT")
    encode = command("encode", "encode values as codes", _encode, codec_options=True)
    encode.add_argument("format", metavar="FMT")
    encode.add_argument("values", metavar="VALUE", nargs="+")
    decode = command("decode", "decode codes (decimal, 0x.., 0b.. or bit strings) to values", _decode)
    decode.add_argument("format", metavar="FMT")
    decode.add_argument("codes", metavar="CODE", nargs="+")
    command("table", "every code of a format of at most 16 bits", _table).add_argument("format", metavar="FMT")
    report = command("report", "quantization error of a checkpoint, tensor by tensor and scheme by scheme", _report)
    report.add_argument("path", metavar="PATH", help=".safetensors, checkpoint directory, index, .npz, .npy or .gguf")
    report.add_argument("--schemes", default=DEFAULT_SCHEMES, help=f"comma-separated (default {DEFAULT_SCHEMES})")
    report.add_argument("--include", default="", help="comma-separated glob patterns of tensors to quantize")
    report.add_argument("--exclude", default="", help="comma-separated glob patterns of tensors to keep as stored")
    report.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="PATTERN=SCHEME",
        help="e.g. '*embed*=bf16' or '*norm*=stored'",
    )
    report.add_argument("--sample", type=float, help="measure the error on this fraction of each tensor's rows")
    report.add_argument("--seed", type=int, default=0, help="seed of --sample")
    report.add_argument("--workers", type=int, default=1, help="processes to spread tensors over")
    report.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    report.add_argument("--summary-only", action="store_true", help="leave out the per-tensor table")
    report.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    report.add_argument("--output", metavar="FILE", help="write each finished tensor's rows to FILE (JSON lines)")
    report.add_argument("--resume", action="store_true", help="skip the tensors --output already holds")
    compare = command("compare", "what a quantized checkpoint lost against its original, tensor by tensor", _compare)
    compare.add_argument("original", metavar="ORIGINAL", help="the checkpoint it was made from")
    compare.add_argument("candidate", metavar="CANDIDATE", help="a .gguf file, an FP8 checkpoint, or any readable one")
    compare.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    compare.add_argument("--summary-only", action="store_true", help="leave out the per-tensor table")
    memory = command("memory", "parameters, weights in a scheme, KV cache and training states of a model", _memory)
    memory.add_argument("model", metavar="MODEL", help="a preset name, a config.json, or a checkpoint directory")
    memory.add_argument(
        "--weights", help="a scheme, llama.cpp file type or format for the matrices (default: as its checkpoint ships)"
    )
    memory.add_argument("--kv-cache", default="bf16", help="cache format: bf16, fp8, q8_0, q4_0 ... (default bf16)")
    memory.add_argument(
        "--context", type=_tokens, help="tokens of context per sequence: 4096, 32k, 128K, 1M (default 4096, said so)"
    )
    memory.add_argument("--batch", type=int, default=1, help="sequences (default 1)")
    memory.add_argument("--override", action="append", default=[], metavar="PATTERN=SCHEME", help="'*embed*=stored'")
    memory.add_argument("--train", metavar="OPTIMIZER", help="add gradients and optimizer states: adam, adam_8bit, sgd")
    memory.add_argument("--zero", type=int, default=0, help="ZeRO stage 0-3 over --dp (default 0)")
    memory.add_argument(
        "--lora-rank", type=int, default=0, help="train LoRA adapters of this rank (QLoRA: --weights nf4)"
    )
    memory.add_argument("--activations", action="store_true", help="add an activation estimate (labelled as such)")
    memory.add_argument("--recompute", choices=["none", "selective", "full"], default="none")
    memory.add_argument(
        "--engine",
        choices=_EngineNames(),
        default="none",
        metavar="ENGINE",
        help="runtime reservation per GPU (an estimate): %(choices)s",
    )
    memory.add_argument(
        "--memory-utilization", type=float, metavar="SHARE",
        help="share of each GPU the engine may use (default 0.9 as vLLM's; 1.0 with --engine llama.cpp or ollama)",
    )  # fmt: skip
    memory.add_argument("--gpu", help="also find the fewest of this GPU that hold it, and time bounds (e.g. H100-SXM)")
    for flag in ("--tp", "--pp", "--dp"):
        memory.add_argument(flag, type=int, default=1, help=f"{flag[2:]} degree (default 1)")
    memory.add_argument(
        "--ep", type=int, default=1, help="expert parallelism with data-parallel attention, for MoE (default 1: none)"
    )
    cost = memory.add_argument_group("cost (with --gpu; your prices, in one currency: none are built in)")
    cost.add_argument("--price-per-gpu-hour", type=float, metavar="PRICE", help="what one GPU-hour costs you")
    cost.add_argument("--purchase", type=float, metavar="PRICE", help="or: a GPU's purchase price, spread over --years")
    cost.add_argument("--years", type=float, default=4.0, help="years of service for --purchase (default 4)")
    cost.add_argument("--watts", type=float, default=0.0, help="power per GPU for --purchase, cooling included")
    cost.add_argument("--kwh-price", type=float, default=0.0, help="energy price per kWh for --watts")
    return parser


# --- the commands: each returns rows (list of dicts), a string, or an object with as_dict() ---------


def _formats(args: argparse.Namespace) -> list[dict[str, Any]]:
    aliases: dict[str, list[str]] = {}
    for alias, name in floatfmt.aliases().items():
        aliases.setdefault(name, []).append(alias)
    rows = []
    for name in floatfmt.formats():
        fmt = floatfmt.get_format(name)
        rows.append({"name": name, "bits": fmt.bits, "max": fmt.max, "aliases": ", ".join(aliases.get(name, []))})
    return rows


def _schemes(args: argparse.Namespace) -> list[dict[str, Any]]:
    from floatfmt.quant.filetypes import FILE_TYPES

    rows = []
    for name in floatfmt.schemes():
        scheme = floatfmt.get_scheme(name)
        bits = scheme.storage_bytes((4096, 4096)) * 8 / 4096**2
        rows.append({"name": name, "bits_per_weight": round(bits, 4), "reference": scheme.reference})
    rows += [
        {"name": name, "bits_per_weight": None, "reference": "llama.cpp file type: a GGML type per tensor"}
        for name in FILE_TYPES
    ]
    return rows


def _presets(args: argparse.Namespace) -> list[dict[str, Any]]:
    from floatfmt.memory import load_model, presets
    from floatfmt.memory.load import preset_source

    rows = []
    for name in presets():
        model = load_model(name)
        rows.append({"name": name, "parameters": model.num_params, "architecture": model.architecture,
                     "source": preset_source(name)})  # fmt: skip
    return rows


def _gpus(args: argparse.Namespace) -> list[dict[str, Any]]:
    from floatfmt.memory import get_gpu, gpus

    return [
        {"name": g.name, "memory_gib": g.memory_gib, "bandwidth_gb_s": g.bandwidth_gbs, "bf16_tflops": g.bf16_tflops,
         "fp8_tflops": g.fp8_tflops, "fp4_tflops": g.fp4_tflops, "estimate": g.estimate}
        for g in (get_gpu(name) for name in gpus())
    ]  # fmt: skip


def _info(args: argparse.Namespace) -> Any:
    summary = floatfmt.info(args.format)
    return summary if args.json else str(summary)


def _explain(args: argparse.Namespace) -> Any:
    decoded = floatfmt.explain(
        args.spec, args.format, rounding=args.rounding, overflow=args.overflow, nan=args.nan, seed=args.seed
    )
    return decoded if args.json else str(decoded)


def _encode(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np  # here: `explain`, `decode`, `info` and `memory` start without numpy

    fmt = floatfmt.get_format(args.format)
    values = np.array([_number(text) for text in args.values], dtype=np.float64)
    codes = floatfmt.encode(values, fmt, rounding=args.rounding, overflow=args.overflow, nan=args.nan, seed=args.seed)
    rows = []
    for text, value, code in zip(args.values, values, codes, strict=True):
        stored = floatfmt.explain(int(code), fmt).as_dict()
        row = {"input": text, "value": json_float(float(value))}
        row.update({key: stored[key] for key in ("code", "hex", "bits")})
        row["stored"] = stored["value"]
        rows.append(row)
    return rows


def _decode(args: argparse.Namespace) -> list[dict[str, Any]]:
    fmt = floatfmt.get_format(args.format)
    columns = ("code", "hex", "bits", "kind", "value")
    return [{key: floatfmt.explain(_code(text, fmt), fmt).as_dict()[key] for key in columns} for text in args.codes]


def _table(args: argparse.Namespace) -> Any:
    values = floatfmt.table(args.format)
    return values.rows() if args.json else str(values)


# --- parsing and printing -------------------------------------------------------------------


DEFAULT_SCHEMES = "fp8_e4m3_block128,mxfp4,nvfp4,int4_g128"


def _report(args: argparse.Namespace) -> str:
    overrides = _overrides(args.override)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    options: dict[str, Any] = dict(
        include=_globs(args.include),
        exclude=_globs(args.exclude),
        overrides=overrides,
        sample=args.sample,
        seed=args.seed,
        progress=False if args.quiet else None,
        output=args.output,
        resume=args.resume,
    )
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor  # here: its import costs every command ~20 ms

        pool = ProcessPoolExecutor(args.workers, initializer=_quiet_worker)
        try:
            result = floatfmt.quant_report(args.path, args.schemes, executor=pool, **options)
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown()
    else:
        result = floatfmt.quant_report(args.path, args.schemes, **options)
    return _formatted(result, args)


def _compare(args: argparse.Namespace) -> str:
    return _formatted(floatfmt.compare(args.original, args.candidate), args)


def _formatted(result: Any, args: argparse.Namespace) -> str:
    """A report in the ``--format`` asked for (``--json`` is the same as ``--format json``)."""
    output_format = "json" if args.json else args.format
    if output_format == "json":
        args.json = False  # already JSON text
        return str(result.to_json())
    if output_format == "csv":
        return str(result.to_csv()).rstrip("\n")
    if output_format == "markdown":
        return str(result.to_markdown(tensors=not args.summary_only)).rstrip("\n")
    return str(result.to_text(tensors=not args.summary_only)).rstrip("\n")


def _quiet_worker() -> None:
    """Workers leave Ctrl-C and SIGTERM to the command, which stops them (no traceback from each)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once: cancel what has not started and kill the workers (no orphans, no waiting)."""
    workers = list(getattr(pool, "_processes", {}).values())  # the executor has no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.kill()
    for worker in workers:
        worker.join(timeout=5)


def _memory(args: argparse.Namespace) -> Any:
    from floatfmt.memory import fit, footprint, load_model, roofline

    default_context = args.context is None
    if default_context:
        args.context = DEFAULT_CONTEXT
    if _is_checkpoint(args.model):
        return _checkpoint_memory(args)
    model = load_model(args.model)
    options = dict(weights=args.weights, overrides=_overrides(args.override), **_footprint_options(args))
    layout = {"tp": args.tp, "pp": args.pp, "ep": args.ep}
    result = footprint(model, **options, **layout)
    placed = bound = None
    if args.gpu:  # the same options: the fit places this footprint (the layout given, if any, else the fewest GPUs)
        fixed = {name: degree for name, degree in layout.items() if degree != 1}
        placed = fit(model, args.gpu, memory_utilization=args.memory_utilization, **options, **fixed)
        if args.train is None and placed.gpu.bandwidth_gbs > 0:  # custom:GIB GPUs have no figures to bound time
            bound = roofline(model, placed.gpu, gpus=placed.gpus, price_per_gpu_hour=_gpu_hour_price(args), **options)
    elif args.price_per_gpu_hour is not None or args.purchase is not None:
        raise ValueError("a cost needs --gpu: the price is per GPU-hour of the GPU the model is placed on")
    counts = {name: count for name, count in model.params_by_component().items() if count}
    if args.json:
        return {
            "model": model.name,
            "parameters": model.num_params,
            "active_parameters": model.active_params,
            "parameters_by_component": counts,
            "footprint": result.as_dict(),
            **({"fit": placed.as_dict()} if placed is not None else {}),
            **({"roofline": bound.as_dict()} if bound is not None else {}),
        }
    width = max(map(len, counts))
    header = f"{model.name}: {model.num_params:,} parameters, {model.active_params:,} active per token\n" + "\n".join(
        f"  {name:<{width}}  {count:>17,}" for name, count in counts.items()
    )
    placement = "".join(f"\n{part}" for part in (placed, bound) if part is not None)
    note = (
        f"\n(context {DEFAULT_CONTEXT:,} tokens per sequence, floatfmt's default; hf-mem and kvfit default to the "
        "model's maximum: --context sets yours)"
        if default_context and args.train is None
        else ""
    )
    return f"{header}\n{result}{placement}{note}"


def _footprint_options(args: argparse.Namespace) -> dict[str, Any]:
    """The footprint options ``floatfmt memory`` takes, for a model by name and for a checkpoint alike (the
    storage and the layout aside)."""
    return dict(
        kv_cache=args.kv_cache, context=args.context, batch=args.batch, training=args.train, zero=args.zero,
        lora_rank=args.lora_rank, activations=args.activations, recompute=args.recompute, engine=args.engine,
        dp=args.dp,
    )  # fmt: skip


DEFAULT_CONTEXT = 4096
"""Tokens per sequence when --context is not given: a typical request, not the model's maximum."""


def _tokens(text: str) -> int:
    """A token count as people write context lengths: ``8192``, ``32k``, ``128K`` (×1024), ``1M`` (×1024²)."""
    cleaned = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1024, "m": 1024**2}.get(cleaned[-1:], 1)
    digits = cleaned[:-1] if scale > 1 else cleaned
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a token count: give 4096, 32k, 128K or 1M")
    return int(digits) * scale


def _gpu_hour_price(args: argparse.Namespace) -> float | None:
    from floatfmt.memory import gpu_hour_cost

    if args.price_per_gpu_hour is not None and args.purchase is not None:
        raise ValueError("give --price-per-gpu-hour or --purchase (with --years, --watts, --kwh-price), not both")
    if args.purchase is not None:
        return gpu_hour_cost(args.purchase, years=args.years, watts=args.watts, energy_price_per_kwh=args.kwh_price)
    return args.price_per_gpu_hour


_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".npz", ".npy")


def _is_checkpoint(text: str) -> bool:
    """A weights file, or a directory holding some: counted from its headers rather than from a config."""
    path = Path(text)
    if path.is_file():
        return path.suffix in _WEIGHT_SUFFIXES
    return path.is_dir() and any(child.suffix == ".safetensors" for child in path.iterdir())


def _checkpoint_memory(args: argparse.Namespace) -> Any:
    """``floatfmt memory PATH``: exact bytes and values from the headers, plus the KV cache and the rest from the
    config beside it (``config.json``) when there is one."""
    from floatfmt.memory import UnsupportedModelError, checkpoint_footprint, load_model

    if args.weights or args.override or args.gpu:
        raise ValueError(
            "a checkpoint is counted as it is stored: --weights, --override and --gpu apply to a model by name or "
            "config.json (give its config.json to ask about another storage)"
        )
    path = Path(args.model)
    config = path / "config.json" if path.is_dir() else path.parent / "config.json"
    model, unread = None, "no config.json beside it"
    if config.is_file():
        try:
            model = load_model(config)
        except UnsupportedModelError as error:
            unread = f"its config is not one floatfmt counts ({str(error).split('; ')[0]})"
    options = dict(tp=args.tp, pp=args.pp, ep=args.ep, **_footprint_options(args))
    result = checkpoint_footprint(path, model, **options)
    if args.json:
        return result
    with floatfmt.open_weights(path) as weights:
        values = weights.num_params
    where = f"; KV cache and the rest from {config}" if model is not None else f"; {unread}: weights only"
    return f"{path}: {values:,} stored values in its tensors{where}\n{result}"


def _overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        pattern, equals, scheme = item.rpartition("=")
        if not equals or not pattern:
            raise ValueError(f"--override takes PATTERN=SCHEME, got {item!r}")
        overrides[pattern] = scheme
    return overrides


def _globs(text: str) -> list[str]:
    return [pattern.strip() for pattern in text.split(",") if pattern.strip()]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _code(text: str, fmt: floatfmt.Format) -> int:
    """A code given as decimal, 0x.., 0b.. or a grouped bit string."""
    stripped = text.strip()
    if stripped.isdigit() and not (len(stripped) == fmt.bits and set(stripped) <= {"0", "1"} and len(stripped) > 1):
        return int(stripped)
    decoded = floatfmt.explain(stripped, fmt)
    if decoded.rounding is not None:
        raise ValueError(f"{text!r} is a value, not a code; use 'floatfmt encode' for values")
    return decoded.code


def _text(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
