"""Memory accounting: exact parameter counts and footprints of real models, and their KV cache.

Example:
    >>> from floatfmt.memory import load_model
    >>> model = load_model("deepseek-v3")
    >>> f"{model.num_params:,}", f"{model.active_params:,}"
    ('684,489,845,504', '37,552,297,472')
"""

from floatfmt.memory.footprint import (
    OPTIMIZERS,
    Footprint,
    Line,
    checkpoint_footprint,
    component_of,
    footprint,
    tensor_storage,
)
from floatfmt.memory.gpus import Fit, Gpu, Layout, LayoutCheck, Roofline, fit, get_gpu, gpu_hour_cost, gpus, roofline
from floatfmt.memory.load import load_model, presets
from floatfmt.memory.model import ARCHITECTURES, COMPONENTS, ModelSpec, Tensor, TensorGroup, UnsupportedModelError
from floatfmt.quant.storage import cache_bytes

__all__ = [
    "ARCHITECTURES",
    "COMPONENTS",
    "Fit",
    "Layout",
    "LayoutCheck",
    "Gpu",
    "Roofline",
    "fit",
    "get_gpu",
    "gpu_hour_cost",
    "gpus",
    "roofline",
    "OPTIMIZERS",
    "checkpoint_footprint",
    "component_of",
    "Footprint",
    "Line",
    "ModelSpec",
    "Tensor",
    "TensorGroup",
    "UnsupportedModelError",
    "cache_bytes",
    "footprint",
    "load_model",
    "presets",
    "tensor_storage",
]
