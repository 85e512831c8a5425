"""Compare floatfmt's schemes with the tools they are named after, where those run on a CPU but cannot be
installed in CI (they pull CUDA stacks or pin other torch releases): NVIDIA ModelOpt, torchao, bitsandbytes.

Run it once in a scratch environment that has them (``pip install torch torchao nvidia-modelopt bitsandbytes``,
the last three with ``--no-deps`` next to a CPU torch) and floatfmt importable (``PYTHONPATH=.``)::

    python benchmarks/check_references.py            # a table: scheme, tool, version, matrices, codes equal
    python benchmarks/check_references.py --json out.json

Each check quantizes awkward matrices (rows of very different scales; blocks that are zero, constant, tiny,
huge, one-signed; exact ties between two codes; negative zeros) with the tool and with floatfmt, and counts the
element codes, block scales and dequantized values that differ. The counts go into docs/quantization.md; the
tests re-derive the same rules without the tools.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

import numpy as np

import floatfmt


@dataclass
class Check:
    scheme: str
    tool: str
    version: str
    matrices: int
    values: int
    code_mismatches: int
    scale_mismatches: int
    value_mismatches: int


def awkward(seed: int, rows: int = 64, cols: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, cols)) * rng.uniform(1e-3, 10, (rows, 1))).astype(np.float32)
    w[0, :32] = 0
    w[1, :32] = 5.0
    w[2, :32] = -3.0
    w[3, :32] = rng.uniform(0, 1, 32)
    w[4, :32] = 1e-30
    w[5, :32] = rng.standard_normal(32) * 3e3
    w[6, :32] = np.linspace(-8, 7, 32)
    w[7, :16] = np.array([6, 5, 3.5, 2.5, 1.75, 1.25, 0.75, 0.25, -6, -5, -3.5, -2.5, -1.75, -1.25, -0.75, -0.25])
    w[8, :16] = -0.0
    w[8, 0] = 1.0
    w[9, :16] = w[9, :16] * 1e-6  # a block whose scale falls below E4M3's smallest value
    return w


def _unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), dtype=np.uint8)
    out[..., 0::2] = packed & 0x0F
    out[..., 1::2] = packed >> 4
    return out


def check_modelopt(seeds: range) -> Check:
    import modelopt
    import torch
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    codes = scales = values = total = 0
    for seed in seeds:
        w = awkward(seed)
        qt, block_scale, scale_2 = NVFP4QTensor.quantize(torch.from_numpy(w.copy()), 16)
        theirs_codes = _unpack_nibbles(qt._quantized_data.numpy())
        theirs_scales = block_scale.float().numpy()
        theirs_values = qt.dequantize(
            dtype=torch.float32, scale=block_scale, double_scale=scale_2, block_sizes={-1: 16}
        ).numpy()
        q = floatfmt.quantize(w, "nvfp4")
        codes += int(np.count_nonzero(q.codes != theirs_codes))
        scales += int(np.count_nonzero(q.scales != theirs_scales)) + int(np.float32(q.tensor_scale) != scale_2.item())
        values += int(np.count_nonzero(q.dequantize().view(np.uint32) != theirs_values.view(np.uint32)))
        total += w.size
    return Check(
        "nvfp4", "nvidia-modelopt NVFP4QTensor", modelopt.__version__, len(seeds), total, codes, scales, values
    )


def check_torchao(seeds: range) -> Check:
    import torch
    import torchao
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale

    codes = scales = values = total = 0
    for seed in seeds:
        w = awkward(seed)
        x = torch.from_numpy(w.copy())
        per_tensor_scale = per_tensor_amax_to_scale(torch.max(torch.abs(x)))
        t = NVFP4Tensor.to_nvfp4(x, per_tensor_scale=per_tensor_scale)
        theirs_codes = _unpack_nibbles(t.qdata.view(torch.uint8).numpy())
        theirs_scales = t.scale.view(torch.float8_e4m3fn).float().numpy().reshape(w.shape[0], -1)
        theirs_values = t.dequantize(torch.float32).numpy()
        q = floatfmt.quantize(w, "nvfp4_torchao")
        codes += int(np.count_nonzero(q.codes != theirs_codes))
        scales += int(np.count_nonzero(q.scales != theirs_scales)) + int(
            np.float32(q.tensor_scale) != per_tensor_scale.item()
        )
        values += int(np.count_nonzero(q.dequantize().view(np.uint32) != theirs_values.view(np.uint32)))
        total += w.size
    return Check(
        "nvfp4_torchao", "torchao NVFP4Tensor.to_nvfp4", torchao.__version__, len(seeds), total, codes, scales, values
    )


def check_bitsandbytes(seeds: range, double: bool) -> Check:
    import bitsandbytes
    import bitsandbytes.functional as F
    import torch

    name = "nf4_dq" if double else "nf4"
    codes = scales = values = total = 0
    for seed in seeds:
        w = awkward(seed, rows=37, cols=100)  # rows of 100: blocks of 64 cross rows
        x = torch.from_numpy(w.copy())
        packed, state = F.quantize_4bit(x, blocksize=64, compress_statistics=double, quant_type="nf4")
        theirs_codes = packed.numpy().reshape(-1)
        theirs_values = F.dequantize_4bit(packed, state).numpy()
        q = floatfmt.quantize(w, name)
        arrays = q.scheme.rule.stored(q)
        mine = np.asarray(arrays["codes"]).reshape(-1)
        packed_mine = (mine[0::2] << 4) | np.pad(mine[1::2], (0, mine.size % 2))  # bitsandbytes: high nibble first
        codes += int(np.count_nonzero(packed_mine.astype(np.uint8) != theirs_codes[: packed_mine.size]))
        if double:
            theirs = state.state2.absmax.numpy()
            scales += int(np.count_nonzero(arrays["scale_group_max"] != theirs))
            scales += int(np.count_nonzero(arrays["scale_codes"] != state.absmax.numpy()))
        else:
            scales += int(np.count_nonzero(q.scales.reshape(-1) != state.absmax.numpy()))
        values += int(np.count_nonzero(q.dequantize().view(np.uint32) != theirs_values.view(np.uint32)))
        total += w.size
    return Check(
        name, "bitsandbytes quantize_4bit (CPU)", bitsandbytes.__version__, len(seeds), total, codes, scales, values
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    seeds = range(args.seeds)
    checks: list[Check] = []
    for run in (
        lambda: check_modelopt(seeds),
        lambda: check_torchao(seeds),
        lambda: check_bitsandbytes(seeds, False),
        lambda: check_bitsandbytes(seeds, True),
    ):
        try:
            checks.append(run())
        except ImportError as error:
            print(f"skipped: {error}", file=sys.stderr)
    print(f"{'scheme':<14} {'tool':<34} {'version':<10} {'matrices':>8} {'values':>9} codes≠ scales≠ values≠")
    for c in checks:
        print(
            f"{c.scheme:<14} {c.tool:<34} {c.version:<10} {c.matrices:>8} {c.values:>9} "
            f"{c.code_mismatches:>6} {c.scale_mismatches:>7} {c.value_mismatches:>7}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(c) for c in checks], out, indent=2)
    return 0 if all(c.code_mismatches == c.scale_mismatches == c.value_mismatches == 0 for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
