"""What an inference engine holds on each GPU beside the weights and the KV cache: typical figures, as estimates.

* ``cuda``: the CUDA context and cuBLAS workspace, about 0.5 GiB with recent drivers (it varies with the
  driver, the GPU and the libraries loaded: measure yours).
* ``llama.cpp``: that, plus its compute buffer: float32 activations and logits of one 512-token micro-batch.
* ``ollama``: the estimate Ollama itself makes before it places a model on a GPU: the 457 MiB it leaves free on
  every CUDA GPU (``cudaMinimumMemory``, ``discover/gpu.go``) and its compute-graph size for a full offload
  (``GGML.GraphSize``, ``fs/ggml/ggml.go``), which depends on the architecture, the context and the number of
  parallel sequences. Architectures it has no formula for get ``(heads / KV heads) × KV cache / 6``
  (``llm/memory.go``), with its KV cache estimate of 2, 1 or 0.5 bytes per element for f16, q8_0 and q4_0.

* ``vllm``: what vLLM counts inside its ``gpu_memory_utilization`` share besides the weights and the KV cache:
  the activation peak of its profile run, a forward pass over ``max_num_batched_tokens`` (8,192) tokens (an
  estimate here). vLLM sets the KV cache to what is left of the share: ``total × utilization − weights −
  activation peak − memory allocated outside torch since start-up`` (``Worker.determine_available_memory`` in
  ``vllm/v1/worker/gpu_worker.py``, vLLM's V1 worker as of its late-2025 releases), in blocks of 16 tokens. The
  CUDA context and NCCL buffers (allocated before vLLM takes its start-up snapshot) and the CUDA graphs
  (captured after the KV cache is allocated) come out of the remaining share, not out of it.

vLLM's ``gpu_memory_utilization`` is a share of the GPU rather than a size, and is applied by
:func:`floatfmt.memory.fit`.

Sliding-window layers are an engine property too (:func:`kv_window`): transformers, vLLM and SGLang keep the
window for every architecture whose config has one; llama.cpp (and Ollama, which runs it) keeps a window only
for the architectures it implements sliding-window attention for (Gemma 2 and 3, gpt-oss), and then the window
plus one micro-batch, padded; Mistral's ``sliding_window`` it ignores, caching the whole context.
"""

from __future__ import annotations

from floatfmt.memory.model import ModelSpec

__all__ = ["ENGINES", "VLLM_BATCHED_TOKENS", "VLLM_BLOCK_TOKENS", "kv_window", "prefill_peak", "runtime_bytes"]

ENGINES = {
    "none": "nothing reserved",
    "cuda": "CUDA context and cuBLAS workspace: typically 0.3 to 0.6 GiB per GPU with recent drivers",
    "llama.cpp": "CUDA context (typical, 0.5 GiB) and llama.cpp's compute buffer",
    "ollama": "Ollama's own estimate: 457 MiB kept free per GPU and its compute-graph size",
    "vllm": "vLLM's profile-run activation peak inside its gpu_memory_utilization share (context and graphs outside)",
}
"""The engines whose runtime reservation :func:`runtime_bytes` knows, and what it counts."""

CUDA_CONTEXT = 512 * 2**20
OLLAMA_MINIMUM_FREE = 457 * 2**20
MICRO_BATCH = 512
"""Tokens computed at a time: llama.cpp's default ``n_ubatch`` and Ollama's ``num_batch`` (Ollama sizes its graph
for ``min(num_ctx, num_batch)``)."""
VLLM_BATCHED_TOKENS = 8192
"""vLLM's default ``max_num_batched_tokens`` for serving: the tokens of its profile run."""
VLLM_BLOCK_TOKENS = 16
"""vLLM's KV cache block size (``--block-size``): it allocates the cache in whole blocks."""

_OLLAMA_QUANTIZED_KV_BYTES = {"q8_0": 1.0, "q4_0": 0.5}
"""Ollama's bytes per cached value for its quantized caches; any other cache it counts as f16 (2 bytes)."""


LLAMA_CPP_SLIDING = ("gemma2", "gemma3", "gemma3_text", "gpt_oss")
"""Architectures llama.cpp runs with a sliding-window cache (``hparams.n_swa``, ``llama-model.cpp``)."""

LLAMA_CPP_CELL_PADDING = 256
"""llama.cpp pads its sliding-window cache to this many cells (``n_pad``, ``llama-kv-cache-iswa.cpp``)."""


def kv_window(engine: str, model: ModelSpec) -> tuple[int | None, str]:
    """Tokens a sliding-window layer of ``model`` keeps under ``engine`` (``None``: the model's window, 0: the
    whole context, as for a full-attention layer), and the rule, said in words for the KV cache line."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not model.sliding_layers:
        return None, ""
    window, layers = model.sliding_window, f"{model.sliding_layers} of {model.num_layers} layers"
    if engine not in ("llama.cpp", "ollama"):
        return None, f"{layers} hold a {window}-token window (as transformers, vLLM and SGLang keep it)"
    if model.architecture not in LLAMA_CPP_SLIDING:
        return 0, f"{engine} keeps full attention on every layer ({model.architecture}'s {window}-token window unused)"
    cells = -(-(window + MICRO_BATCH) // LLAMA_CPP_CELL_PADDING) * LLAMA_CPP_CELL_PADDING
    return cells, (
        f"{layers} hold {cells} cells ({engine}: the {window}-token window + one {MICRO_BATCH}-token micro-batch, "
        f"padded to {LLAMA_CPP_CELL_PADDING})"
    )


def prefill_peak(model: ModelSpec, tokens: int, sequences: int) -> tuple[int, str]:
    """The activation peak of a forward pass over ``tokens`` tokens of ``sequences`` sequences, one layer at a
    time (16-bit residual, normed input, gate, up and product; FlashAttention keeps no scores), plus float32
    logits of each sequence's last token: an estimate, and its formula."""
    h = model.hidden_size
    inner = model.active_mlp_width
    peak = tokens * 2 * (2 * h + 3 * inner) + 4 * sequences * model.vocab_size
    return peak, (
        f"{tokens:,} tokens × 2 B × (2 × hidden {h} + 3 × MLP width {inner}) (residual, normed input, gate, up, "
        f"product; FlashAttention keeps no scores) + last-token logits {sequences} × {model.vocab_size} × 4 B"
    )


def runtime_bytes(engine: str, model: ModelSpec, *, context: int, batch: int, kv_cache: str) -> tuple[int, str]:
    """Bytes ``engine`` reserves on each GPU for ``model``, and how they were computed.

    ``context`` tokens for each of ``batch`` sequences (Ollama's ``num_ctx`` and ``OLLAMA_NUM_PARALLEL``).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "none":
        return 0, ENGINES[engine]
    if engine == "cuda":
        return CUDA_CONTEXT, ENGINES[engine]
    if engine == "vllm":
        peak, formula = prefill_peak(model, VLLM_BATCHED_TOKENS, min(256, VLLM_BATCHED_TOKENS))
        return peak, (
            f"vLLM's profile run ({VLLM_BATCHED_TOKENS:,} batched tokens, up to 256 sequences), inside "
            f"gpu_memory_utilization's share: {formula}; the CUDA context, NCCL and CUDA graphs come out of the rest"
        )
    if engine == "llama.cpp":
        width = model.intermediate_size or model.experts_per_token * model.moe_intermediate_size
        buffer = MICRO_BATCH * 4 * (model.vocab_size + 2 * model.hidden_size + 3 * width)
        return CUDA_CONTEXT + buffer, (
            f"CUDA context (typical, 0.5 GiB); compute buffer {MICRO_BATCH} tokens × 4 B × "
            f"(vocab {model.vocab_size} + 2h + 3·MLP) = {buffer:,} B"
        )
    graph, formula = _ollama_graph(model, context, max(batch, 1), kv_cache)
    return OLLAMA_MINIMUM_FREE + graph, f"457 MiB kept free + compute graph {formula} = {graph:,} B"


def _ollama_graph(model: ModelSpec, context: int, parallel: int, kv_cache: str) -> tuple[int, str]:
    """Ollama's full-offload graph size for ``parallel`` sequences of ``context`` tokens."""
    c, b = context * parallel, min(context, MICRO_BATCH)
    h, v, heads, kv_heads = model.hidden_size, model.vocab_size, model.num_heads, model.num_kv_heads
    vocab_graph = 4 * b * (h + v)
    architecture = model.architecture
    if architecture in ("llama", "mistral", "mixtral"):
        attention = 4 * b * (1 + 4 * h + c * (1 + heads))
        return max(attention, vocab_graph), f"max(4b(1+4h+c(1+H)), 4b(h+V)) with b={b}, c={c}"
    if architecture == "qwen2":
        attention = 4 * b * (1 + 2 * h + c + c * heads)
        return max(attention, vocab_graph), f"max(4b(1+2h+c+cH), 4b(h+V)) with b={b}, c={c}"
    if architecture.startswith("gemma"):
        attention = 4 * b * (2 + c + c * heads + 2 * h + 2 * model.head_dim * heads)
        return max(attention, vocab_graph), f"max(4b(h+V), 4b(2+c+cH+2h+2·dk·H)) with b={b}, c={c}"
    if architecture == "deepseek_v3":  # GGUFs converted before MLA caching list as many KV heads as heads
        key = model.qk_nope_head_dim + model.qk_rope_head_dim
        attention = 4 * b * (3 * h + 2 + c * (1 + heads) + 2 * key * heads)
        return max(4 * b * (3 * h + v), attention), f"max(4b(3h+V), 4b(3h+2+c(1+H)+2·dk·H)) with b={b}, c={c}"
    if architecture == "gpt_oss":  # flash attention is on for gpt-oss: Ollama's rough figure
        graph = (4 * parallel + (c >> 10) + 110) * 2**20
        return graph, f"(4·parallel + c/1024 + 110) MiB with c={c}"
    bytes_per_element = _OLLAMA_QUANTIZED_KV_BYTES.get(kv_cache.lower(), 2.0)
    kv_total = int(c * 2 * model.head_dim * kv_heads * model.num_layers * bytes_per_element)
    graph = heads // max(kv_heads, 1) * kv_total // 6
    return graph, f"(H/Hkv) × KV {kv_total:,} B / 6 (Ollama's rule for architectures without a formula)"
