"""Writing a model as one GGUF file, for llama.cpp, Ollama and LM Studio.

The file is written with the official ``gguf`` package (its writer, its
tensor-name map and its quantisers) from weights already in memory: the base
with the run's adapter merged in. Nothing is downloaded, cloned or compiled.
K-quants need llama.cpp's own quantiser and are made by the ``llama-quantize``
program when it is on the PATH.

What decides how the model behaves elsewhere goes into the metadata: the
tokenizer (vocabulary, merges, token types, BOS / EOS / end-of-turn / padding
ids), the chat template the run trained with, the context length, and the
name, base model and run id.

The file is written to a hidden ``.NAME.partial`` beside the target and
renamed into place when complete; a stop, a full disk or any other failure
removes the partial file, so a half-written ``.gguf`` is never left behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftstudio.engine.export import ExportError

# Our name for the architecture (Hugging Face model_type) -> gguf's MODEL_ARCH member name.
SUPPORTED_ARCHITECTURES = {"llama": "LLAMA", "qwen2": "QWEN2", "qwen3": "QWEN3"}
ARCHITECTURE_TITLES = "the Llama family (Llama 2/3.x, SmolLM), Qwen2 / Qwen2.5 and Qwen3"

# Quantisations written here with gguf's own quantisers.
BUILTIN_QUANTS = ("f16", "bf16", "q8_0", "q4_0")
# Quantisations only llama.cpp's quantiser makes (offered when llama-quantize is on the PATH).
K_QUANTS = ("q2_k", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")
QUANT_HELP = {
    "f16": "16-bit floats: the tuned model as it is (half the size of fp32)",
    "bf16": "bfloat16: as f16, with the range of fp32",
    "q8_0": "8-bit: about half the size of f16, nearly the same answers",
    "q4_0": "4-bit: about a quarter of f16, answers can drift",
}
QUANTIZE_PROGRAM = "llama-quantize"

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]


class ExportStopped(ExportError):
    """The export was stopped by the user; nothing was left on disk."""


def llama_quantize() -> str | None:
    """The path of llama.cpp's ``llama-quantize`` when it is on the PATH."""
    return shutil.which(QUANTIZE_PROGRAM)


def available_quants() -> list[str]:
    """The quantisations this computer can write: the built-in four, plus K-quants with llama-quantize."""
    return list(BUILTIN_QUANTS) + (list(K_QUANTS) if llama_quantize() else [])


def check_quant(quant: str) -> str:
    quant = (quant or "f16").lower()
    if quant in BUILTIN_QUANTS:
        return quant
    if quant in K_QUANTS:
        if llama_quantize() is None:
            raise ExportError(
                f"{quant} is a K-quant, which only llama.cpp's quantiser makes, and no "
                f"'{QUANTIZE_PROGRAM}' program is on the PATH. Install llama.cpp, or choose one of "
                f"{', '.join(BUILTIN_QUANTS)}."
            )
        return quant
    raise ExportError(f"Unknown quantisation '{quant}'; choose one of {', '.join(BUILTIN_QUANTS + K_QUANTS)}")


# -- what the file will say about the model -------------------------------------------------


@dataclass
class GGUFInfo:
    """Everything about the export that is decided before any weight is touched."""

    model_dir: Path
    architecture: str  # Hugging Face model_type: llama | qwen2 | qwen3
    config: dict[str, Any]
    tokenizer_dir: Path  # where the run's tokenizer (and its chat template) lives
    tokenizer_pre: str  # llama.cpp's name for how text is split before BPE
    name: str
    base_model: str
    run_id: str | None = None
    train_context_length: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


def read_architecture(model_dir: Path) -> tuple[str, dict[str, Any]]:
    """The model_type of the Hugging Face folder and its config, refusing what we cannot write."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"Cannot read {Path(model_dir) / 'config.json'}: {exc}") from None
    arch = str(config.get("model_type") or "")
    if arch not in SUPPORTED_ARCHITECTURES:
        names = ", ".join(config.get("architectures") or []) or arch or "an unnamed architecture"
        raise ExportError(
            f"GGUF export does not support the '{arch or '?'}' architecture ({names}) of "
            f"{model_dir}. It writes {ARCHITECTURE_TITLES}; export the adapter or the merged "
            "model instead."
        )
    rope = _rope_parameters(config)
    kind = str(rope.get("rope_type") or rope.get("type") or "default")
    if kind not in ("default", "linear", "llama3", "yarn"):
        raise ExportError(
            f"The model in {model_dir} uses '{kind}' RoPE scaling, which GGUF export does not "
            "write; export the merged model instead."
        )
    return arch, config


def _rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return dict(rope) if isinstance(rope, dict) else {}


def _rope_theta(config: dict[str, Any]) -> float:
    rope = _rope_parameters(config)
    return float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0)


def tokenizer_pre(model_dir: Path, tokenizer_dir: Path) -> str:
    """llama.cpp's name for the text splitting the tokenizer does before its merges (``tokenizer.ggml.pre``).

    A model that FT Studio converted from a GGUF (the bundled model) keeps the
    name its source file gave. Otherwise the tokenizer's own split pattern is
    matched against the ones transformers' GGUF reader knows, so the file is
    read back with the splitting the run used.
    """
    source = Path(model_dir) / "ftstudio_source.json"
    if source.is_file():
        pre = _source_gguf_pre(source)
        if pre:
            return pre
    path = Path(tokenizer_dir) / "tokenizer.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"GGUF export needs the fast tokenizer file {path}: {exc}") from None
    model = data.get("model") or {}
    pieces = _pre_tokenizer_pieces(data.get("pre_tokenizer"))
    byte_level = any(p.get("type") == "ByteLevel" for p in pieces)
    if model.get("type") != "BPE" or not byte_level:
        kind = "SentencePiece-style" if model.get("type") in ("BPE", "Unigram") else str(model.get("type"))
        raise ExportError(
            f"The tokenizer in {tokenizer_dir} is a {kind} tokenizer; GGUF export writes byte-level "
            "BPE tokenizers (Llama 3, SmolLM, Qwen). Export the merged model instead."
        )
    splits = [p for p in pieces if p.get("type") == "Split"]
    if not splits:
        digits = any(p.get("type") == "Digits" and p.get("individual_digits") for p in pieces)
        return "smollm" if digits else "gpt-2"
    pattern = (splits[0].get("pattern") or {}).get("Regex") or ""
    known = _known_split_patterns()
    if pattern in known:
        return known[pattern]
    raise ExportError(
        f"The tokenizer in {tokenizer_dir} splits text with a pattern llama.cpp's readers do not "
        "know by name, so the exported file would tokenise differently. Export the merged model "
        "instead."
    )


def _source_gguf_pre(source: Path) -> str | None:
    try:
        name = json.loads(source.read_text(encoding="utf-8")).get("gguf")
        from ftstudio.engine.models import BUNDLED_GGUF, bundled_gguf

        if name != BUNDLED_GGUF:
            return None
        from gguf import GGUFReader

        field_ = GGUFReader(str(bundled_gguf())).fields.get("tokenizer.ggml.pre")
        return str(field_.contents()) if field_ is not None else None
    except Exception:  # the source file is gone or unreadable: decide from the tokenizer instead
        return None


def _pre_tokenizer_pieces(pre: Any) -> list[dict[str, Any]]:
    if not isinstance(pre, dict):
        return []
    if pre.get("type") == "Sequence":
        return [p for p in pre.get("pretokenizers") or [] if isinstance(p, dict)]
    return [pre]


def _known_split_patterns() -> dict[str, str]:
    """Split regex -> the llama.cpp name that transformers' GGUF reader turns back into it."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            GGUF_PRE_TOKENIZER_SPLITS,
        )
    except ImportError:  # an older transformers: no table to match against
        return {}
    preferred = ("llama-bpe", "qwen2", "gpt-4o", "tekken", "qwen35")
    out: dict[str, str] = {}
    for name in preferred + tuple(GGUF_PRE_TOKENIZER_SPLITS):
        pattern = GGUF_PRE_TOKENIZER_SPLITS.get(name)
        if pattern is not None:
            out.setdefault(pattern, name)
    return out


def has_tokenizer(folder: Path) -> bool:
    return (Path(folder) / "tokenizer.json").is_file() and (Path(folder) / "tokenizer_config.json").is_file()


def prepare(
    model_dir: Path,
    adapter_dir: Path | None,
    *,
    name: str,
    base_model: str,
    run_id: str | None = None,
    train_context_length: int | None = None,
) -> GGUFInfo:
    """Check that the model can be written as GGUF, before any work starts; ExportError in words if not."""
    arch, config = read_architecture(model_dir)
    tokenizer_dir = (
        Path(adapter_dir) if adapter_dir is not None and has_tokenizer(adapter_dir) else Path(model_dir)
    )
    pre = tokenizer_pre(model_dir, tokenizer_dir)
    return GGUFInfo(
        model_dir=Path(model_dir),
        architecture=arch,
        config=config,
        tokenizer_dir=tokenizer_dir,
        tokenizer_pre=pre,
        name=name,
        base_model=base_model,
        run_id=run_id,
        train_context_length=train_context_length,
    )


# -- the tokenizer ------------------------------------------------------------------------------


@dataclass
class StopTokens:
    eos: int | None
    eot: int | None
    eom: int | None
    pad: int | None
    bos: int | None
    unk: int | None

    def ids(self) -> list[int]:
        return [i for i in dict.fromkeys((self.eos, self.eot, self.eom)) if i is not None]


# Token texts that end a turn in the chat models we write.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
END_OF_MESSAGE = ("<|eom_id|>",)


def special_tokens(tokenizer: Any, generation_eos: list[int]) -> StopTokens:
    """BOS / EOS / end-of-turn / end-of-message / padding ids, from the tokenizer and generation config."""
    eos = tokenizer.eos_token_id
    stops = [i for i in dict.fromkeys([*generation_eos, *([eos] if eos is not None else [])])]
    texts = {i: tokenizer.convert_ids_to_tokens(i) for i in stops}
    eot = next((i for i in stops if texts[i] in END_OF_TURN and texts[i] != "<|endoftext|>"), None)
    if eot is None:
        eot = next((i for i in stops if texts[i] in END_OF_TURN), None)
    eom = next((i for i in stops if texts[i] in END_OF_MESSAGE), None)
    if eos is None and stops:
        eos = stops[0]
    return StopTokens(
        eos=eos,
        eot=eot,
        eom=eom,
        pad=tokenizer.pad_token_id,
        bos=tokenizer.bos_token_id,
        unk=tokenizer.unk_token_id,
    )


def _vocabulary(tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    """Token texts (in the byte-level spelling the merges use) and llama.cpp token types, for every id."""
    from gguf import TokenType

    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        text = tokenizer.convert_ids_to_tokens(i) if i < len(tokenizer) else None
        if text is None:
            tokens.append(f"[PAD{i}]")  # the embedding is padded past the vocabulary: rows no text reaches
            types.append(int(TokenType.UNUSED))
        elif i in added:
            tokens.append(added[i].content)
            types.append(int(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED))
        else:
            tokens.append(text)
            types.append(int(TokenType.NORMAL))
    return tokens, types


def _adds_token(tokenizer: Any, token_id: int | None, first: bool) -> bool:
    if token_id is None:
        return False
    ids = tokenizer("x")["input_ids"]
    return bool(ids) and (ids[0] if first else ids[-1]) == token_id


def write_tokenizer(
    writer: Any, tokenizer: Any, info: GGUFInfo, n_vocab: int, stops: StopTokens, chat_template: str
) -> None:
    from gguf import SpecialVocab

    tokens, types = _vocabulary(tokenizer, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(info.tokenizer_pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # The merges exactly as llama.cpp's converter reads them from tokenizer.json.
    merges = SpecialVocab(info.tokenizer_dir, load_merges=True, n_vocab=n_vocab).merges
    if not merges:
        raise ExportError(f"The tokenizer in {info.tokenizer_dir} lists no merges; GGUF export needs them")
    writer.add_token_merges(merges)
    for kind in ("bos", "eos", "eot", "eom", "unk"):
        value = getattr(stops, kind)
        if value is not None:
            getattr(writer, f"add_{kind}_token_id")(int(value))
    if stops.pad is not None:
        writer.add_pad_token_id(int(stops.pad))
    writer.add_add_bos_token(_adds_token(tokenizer, stops.bos, first=True))
    writer.add_add_eos_token(_adds_token(tokenizer, stops.eos, first=False))
    writer.add_add_space_prefix(False)
    writer.add_chat_template(chat_template)


def chat_template_of(tokenizer: Any) -> str:
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), None)
    if not template:
        raise ExportError(
            "The run's tokenizer has no chat template; the exported model would not know how "
            "a conversation is laid out"
        )
    return str(template)


# -- the weights --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorPlan:
    gguf_name: str
    source: str  # the state-dict key, or "" for a tensor made here (rope_freqs)
    shape: tuple[int, ...]
    qtype: Any  # gguf.GGMLQuantizationType


def _llama_permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """The q/k row order llama.cpp's rope expects (the inverse of what transformers' GGUF reader undoes)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensor_type(quant: str, gguf_name: str, shape: tuple[int, ...]) -> Any:
    """The GGML type of one tensor: 1-D tensors stay fp32; blocks need rows that divide into 32."""
    from gguf import GGMLQuantizationType as Q

    if len(shape) == 1 or gguf_name == "rope_freqs.weight":
        return Q.F32
    if quant == "bf16":
        return Q.BF16
    if quant == "f16":
        return Q.F16
    if shape[-1] % 32:
        return Q.F16  # as llama.cpp's converter does for rows its blocks cannot cover
    if quant == "q4_0" and gguf_name in ("token_embd.weight", "output.weight"):
        # The embedding doubles as the output layer in most small models; 4 bits there
        # costs more quality than anywhere else (llama.cpp's quantiser keeps it higher too).
        return Q.Q8_0
    return Q.Q4_0 if quant == "q4_0" else Q.Q8_0


def _file_type(quant: str) -> int:
    from gguf import LlamaFileType as F

    return int(
        {"f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0, "q4_0": F.MOSTLY_Q4_0}[quant]
    )


def plan_tensors(state_dict: dict[str, Any], info: GGUFInfo, quant: str) -> list[TensorPlan]:
    import gguf

    arch = getattr(gguf.MODEL_ARCH, SUPPORTED_ARCHITECTURES[info.architecture])
    n_layers = int(info.config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(arch, n_layers)
    tied = bool(info.config.get("tie_word_embeddings", False))
    plans = []
    for key, tensor in state_dict.items():
        if key == "lm_head.weight" and tied:
            continue  # the output layer is the embedding: llama.cpp reads it from token_embd
        if key.endswith(("rotary_emb.inv_freq", ".masked_bias", ".attn.bias")):
            continue
        gguf_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(
                f"The weight '{key}' has no GGUF name for {info.architecture}; this model has "
                "parts GGUF export does not know. Export the merged model instead."
            )
        shape = tuple(int(s) for s in tensor.shape)
        plans.append(TensorPlan(gguf_name, key, shape, _tensor_type(quant, gguf_name, shape)))
    rope = _rope_parameters(info.config)
    if str(rope.get("rope_type") or rope.get("type") or "") == "llama3":
        head_dim = _head_dim(info.config)
        shape = (head_dim // 2,)
        plans.insert(
            0, TensorPlan("rope_freqs.weight", "", shape, _tensor_type(quant, "rope_freqs.weight", shape))
        )
    return plans


def _head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def _llama3_rope_factors(config: dict[str, Any]) -> Any:
    """The per-frequency factors llama.cpp applies for Llama 3.1-style RoPE (as its converter computes them)."""
    import numpy as np

    rope = _rope_parameters(config)
    dim = _head_dim(config)
    freqs = 1.0 / (_rope_theta(config) ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old = float(rope.get("original_max_position_embeddings", 8192))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _tensor_data(plan: TensorPlan, state_dict: dict[str, Any], info: GGUFInfo) -> Any:
    """The numpy array of one tensor, in llama.cpp's layout, as fp32."""
    import torch

    if not plan.source:
        return _llama3_rope_factors(info.config)
    data = state_dict[plan.source].detach().to(torch.float32).cpu().numpy()
    if info.architecture == "llama":
        heads = int(info.config["num_attention_heads"])
        kv = int(info.config.get("num_key_value_heads") or heads)
        if plan.gguf_name.endswith("attn_q.weight"):
            data = _llama_permute(data, heads, heads)
        elif plan.gguf_name.endswith("attn_k.weight"):
            data = _llama_permute(data, heads, kv)
    return data


def _encoded(data: Any, qtype: Any) -> Any:
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    if qtype == Q.F32:
        return data.astype("float32", copy=False)
    if qtype == Q.F16:
        return data.astype("float16")
    return quants.quantize(data, qtype)


def _byte_shape(plan: TensorPlan) -> tuple[tuple[int, ...], Any, int]:
    """(shape as written, numpy dtype, bytes) of a planned tensor, known before it is quantised."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    if plan.qtype == Q.F32:
        return plan.shape, np.dtype(np.float32), 4 * math.prod(plan.shape)
    if plan.qtype == Q.F16:
        return plan.shape, np.dtype(np.float16), 2 * math.prod(plan.shape)
    shape = quants.quant_shape_to_byte_shape(plan.shape, plan.qtype)
    return tuple(shape), np.dtype(np.uint8), math.prod(shape)


def write_metadata(writer: Any, info: GGUFInfo, quant: str) -> None:
    import gguf

    cfg = info.config
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(info.name)
    writer.add_description(
        f"{info.name}: fine-tuned with FT Studio from {info.base_model}"
        if info.run_id
        else f"{info.base_model}, exported by FT Studio"
    )
    if info.run_id:
        writer.add_finetune(info.run_id)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, info.base_model)
    if "/" in info.base_model and not Path(info.base_model).expanduser().exists():
        writer.add_base_model_repo_url(0, f"https://huggingface.co/{info.base_model}")
    writer.add_string("ftstudio.base_model", info.base_model)
    writer.add_string("ftstudio.run_id", info.run_id or "base")
    if info.train_context_length:
        writer.add_uint32("ftstudio.train_context_length", int(info.train_context_length))
    for key, value in info.extra.items():
        writer.add_string(f"ftstudio.{key}", value)

    # The model's own positional range: what llama.cpp calls its training context. The run's
    # shorter training length is kept beside it (ftstudio.train_context_length), not in its place,
    # so that a runtime does not cap every conversation at the fine-tuning length.
    writer.add_context_length(int(cfg.get("max_position_embeddings") or info.train_context_length or 2048))
    writer.add_embedding_length(int(cfg["hidden_size"]))
    writer.add_block_count(int(cfg["num_hidden_layers"]))
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_head_count(int(cfg["num_attention_heads"]))
    writer.add_head_count_kv(int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]))
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    writer.add_file_type(_file_type(quant))
    if cfg.get("head_dim"):
        writer.add_key_length(int(cfg["head_dim"]))
        writer.add_value_length(int(cfg["head_dim"]))
    if info.architecture == "llama":
        writer.add_vocab_size(int(cfg["vocab_size"]))
        writer.add_rope_dimension_count(_head_dim(cfg))
    rope = _rope_parameters(cfg)
    kind = str(rope.get("rope_type") or rope.get("type") or "default")
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_tensor(writer: Any, data: Any) -> None:
    """Append one tensor's bytes to the open file (the one place tensor data reaches the disk)."""
    writer.write_tensor_data(data)


def partial_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


@dataclass
class WriteResult:
    path: Path
    quant: str
    size_bytes: int
    seconds: float
    tensor_types: dict[str, int]  # GGML type name -> how many tensors
    stop_ids: list[int]
    chat_template: str


def write_gguf(
    model: Any,
    tokenizer: Any,
    info: GGUFInfo,
    out: Path | str,
    quant: str = "f16",
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    generation_eos: list[int] | None = None,
) -> WriteResult:
    """Write ``model`` (already merged, in memory) and ``tokenizer`` as one GGUF file at ``out``.

    ``progress(fraction, message)`` is called after each tensor; ``should_stop()``
    is polled between tensors and ends the export with ExportStopped. Nothing
    is left at ``out`` (or beside it) unless the whole file was written.
    """
    import gguf

    quant = check_quant(quant)
    started = time.perf_counter()
    out = Path(out).expanduser()
    if out.suffix.lower() != ".gguf":
        raise ExportError(f"{out}: a GGUF file's name ends in .gguf")
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give the file to write, ending in .gguf")
    out.parent.mkdir(parents=True, exist_ok=True)
    if quant in K_QUANTS:
        return _write_k_quant(
            model, tokenizer, info, out, quant, progress, should_stop, generation_eos, started
        )

    chat_template = chat_template_of(tokenizer)
    state_dict = model.state_dict()
    n_vocab = int(state_dict["model.embed_tokens.weight"].shape[0])
    stops = special_tokens(tokenizer, generation_eos or [])
    plans = plan_tensors(state_dict, info, quant)
    tmp = partial_path(out)
    tmp.unlink(missing_ok=True)
    arch_name = gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, SUPPORTED_ARCHITECTURES[info.architecture])]
    writer = gguf.GGUFWriter(path=None, arch=arch_name)
    counts: dict[str, int] = {}
    try:
        write_metadata(writer, info, quant)
        write_tokenizer(writer, tokenizer, info, n_vocab, stops, chat_template)
        for plan in plans:
            shape, dtype, nbytes = _byte_shape(plan)
            writer.add_tensor_info(plan.gguf_name, shape, dtype, nbytes, raw_dtype=plan.qtype)
            counts[plan.qtype.name] = counts.get(plan.qtype.name, 0) + 1
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = sum(math.prod(p.shape) for p in plans) or 1
        done = 0
        for plan in plans:
            if should_stop is not None and should_stop():
                raise ExportStopped(f"The export to {out.name} was stopped; no file was written")
            data = _encoded(_tensor_data(plan, state_dict, info), plan.qtype)
            _write_tensor(writer, data)
            done += math.prod(plan.shape)
            if progress is not None:
                progress(done / total, f"Writing {plan.gguf_name}")
        writer.close()
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(_disk_message(exc, out)) from None
    finally:
        _close_quietly(writer)
        tmp.unlink(missing_ok=True)
    return WriteResult(
        out, quant, out.stat().st_size, time.perf_counter() - started, counts, stops.ids(), chat_template
    )


def _disk_message(exc: OSError, out: Path) -> str:
    import errno

    if exc.errno == errno.ENOSPC:
        return (
            f"The disk holding {out.parent} is full; no file was written. Free some space and export again."
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write to {out.parent} ({exc.strerror}); choose another folder."
    return f"Could not write {out}: {exc.strerror or exc}; no file was written."


def _close_quietly(writer: Any) -> None:
    for handle in getattr(writer, "fout", None) or []:
        try:
            handle.close()
        except OSError:
            pass
    writer.fout = None


def _write_k_quant(
    model: Any,
    tokenizer: Any,
    info: GGUFInfo,
    out: Path,
    quant: str,
    progress: ProgressFn | None,
    should_stop: StopFn | None,
    generation_eos: list[int] | None,
    started: float,
) -> WriteResult:
    """An f16 file first (ours), then llama.cpp's quantiser makes the K-quant from it."""
    program = llama_quantize()
    assert program is not None  # check_quant refused the K-quant otherwise
    f16 = out.parent / f".{out.stem}.f16-for-{quant}.gguf"
    tmp = partial_path(out)

    def first_half(fraction: float, message: str) -> None:
        if progress is not None:
            progress(0.5 * fraction, message)

    try:
        base = write_gguf(model, tokenizer, info, f16, "f16", first_half, should_stop, generation_eos)
        if progress is not None:
            progress(0.5, f"Quantising to {quant.upper()} with {QUANTIZE_PROGRAM}")
        tmp.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [program, str(f16), str(tmp), quant.upper()],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        while proc.poll() is None:
            if should_stop is not None and should_stop():
                proc.terminate()
                proc.wait()
                raise ExportStopped(f"The export to {out.name} was stopped; no file was written")
            time.sleep(0.2)
        output = proc.stdout.read() if proc.stdout else ""
        if proc.returncode != 0 or not tmp.is_file():
            tail = "\n".join(output.strip().splitlines()[-5:])
            raise ExportError(
                f"{QUANTIZE_PROGRAM} could not make {quant.upper()} (exit {proc.returncode}):\n{tail}"
            )
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(_disk_message(exc, out)) from None
    finally:
        tmp.unlink(missing_ok=True)
        f16.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0, "Written")
    return WriteResult(
        out,
        quant,
        out.stat().st_size,
        time.perf_counter() - started,
        {quant.upper(): 1},
        base.stop_ids,
        base.chat_template,
    )


def iter_gguf_metadata(path: Path | str) -> Iterator[tuple[str, Any]]:
    """(key, value) of every metadata field of a GGUF file, arrays shortened to their length."""
    from gguf import GGUFReader

    for key, f in GGUFReader(str(path)).fields.items():
        if key.startswith("GGUF."):
            continue
        if len(f.data) > 16:
            yield key, f"[{len(f.data)} items]"
        else:
            yield key, f.contents()


# -- a run (or the base model) to one GGUF file, checked --------------------------------------

PARITY_PROMPTS = 8
PARITY_NEW_TOKENS = 48


@dataclass
class GGUFRequest:
    """What to export and how; built from a project by ``request_for_run``."""

    model_spec: str
    adapter_dir: Path | None  # None: the base model alone
    out: Path
    quant: str = "f16"
    run_id: str | None = None
    name: str = ""
    project_name: str = ""
    train_context_length: int | None = None
    system_prompt: str | None = None
    prompts: list[list[dict[str, Any]]] = field(default_factory=list)
    prompts_kind: str = "held-out"
    parity: bool = True
    max_new_tokens: int = PARITY_NEW_TOKENS
    ollama_dir: Path | None = None
    overwrite: bool = False


@dataclass
class GGUFReport:
    written: WriteResult
    parity: list[Any] = field(default_factory=list)  # gguf_parity.ParityReport, one per reader
    parity_note: str = ""  # why a reader did not run, or that the check was stopped
    modelfile: Any = None  # ollama.Modelfile

    @property
    def passed(self) -> bool | None:
        return all(p.passed for p in self.parity) if self.parity else None

    def lines(self) -> list[str]:
        w = self.written
        types = ", ".join(f"{n} {k}" for k, n in sorted(w.tensor_types.items()))
        out = [
            f"Wrote {w.path} ({w.quant}, {w.size_bytes / 2**20:,.1f} MiB, {w.seconds:.1f} s; tensors: {types})"
        ]
        for p in self.parity:
            out.append("Parity check, " + p.summary())
        if self.parity_note:
            out.append(self.parity_note)
        if self.modelfile is not None:
            out.append(f"Ollama Modelfile: {self.modelfile.path}")
            out.extend(f"  {n}" for n in self.modelfile.notes)
            out.append(f"  Create the Ollama model with: {self.modelfile.command_line}")
        return out


def request_for_run(
    project: Any,
    run: str,
    out: Path | str,
    quant: str = "f16",
    *,
    parity: bool = True,
    prompts: int = PARITY_PROMPTS,
    ollama_dir: Path | str | None = None,
    overwrite: bool = False,
    max_new_tokens: int = PARITY_NEW_TOKENS,
) -> GGUFRequest:
    """The export of ``run`` (a run id, or "base" for the base model) of ``project``."""
    from ftstudio.core.config import BUNDLED_MODEL
    from ftstudio.engine.gguf_parity import held_out_prompts
    from ftstudio.engine.ollama import shared_system_prompt

    data = project.prepared_data()
    conversations, kind = held_out_prompts(data.eval, data.train, prompts)
    project_name = str(getattr(project, "name", "") or Path(project.path).stem)
    if run == "base":
        model_spec, adapter, run_id, length = BUNDLED_MODEL, None, None, None
        runs = project.runs()
        if runs:  # the base the project's latest run was trained on
            model_spec = runs[0].config.get("model", BUNDLED_MODEL) or BUNDLED_MODEL
        name = f"{_model_title(model_spec)}"
    else:
        try:
            record = project.get_run(run)
        except KeyError:
            raise ExportError(f"No run '{run}' in {project.path}") from None
        adapter = project.run_dir(record.id) / "adapter"
        if not adapter.exists():
            raise ExportError(f"Run {record.id} has no adapter yet ({adapter}); finish or resume it first")
        model_spec = record.config.get("model", "") or ""
        run_id, length = record.id, int(record.config.get("max_length") or 0) or None
        name = f"{project_name} {record.id}"
    return GGUFRequest(
        model_spec=model_spec,
        adapter_dir=adapter,
        out=Path(out).expanduser(),
        quant=quant,
        run_id=run_id,
        name=name,
        project_name=project_name,
        train_context_length=length,
        system_prompt=shared_system_prompt(data.train),
        prompts=conversations,
        prompts_kind=kind,
        parity=parity,
        max_new_tokens=max_new_tokens,
        ollama_dir=Path(ollama_dir).expanduser() if ollama_dir else None,
        overwrite=overwrite,
    )


def _model_title(spec: str) -> str:
    return spec.split(":", 1)[-1].rstrip("/").split("/")[-1] or spec


def export_gguf(
    request: GGUFRequest, progress: ProgressFn | None = None, should_stop: StopFn | None = None
) -> GGUFReport:
    """Export, then check: the run's model as one GGUF file, read back and asked the held-out prompts.

    Everything that can be refused is refused before the model is loaded. A
    stop before the file is complete leaves nothing on disk; a stop during the
    check keeps the (complete) file and says the check did not finish.
    """
    import gc

    from ftstudio.engine import gguf_parity as parity
    from ftstudio.engine.export import load_tuned, merged
    from ftstudio.engine.models import ModelError, load_tokenizer, resolve_model, stop_token_ids

    quant = check_quant(request.quant)
    out = Path(request.out).expanduser()
    if out.suffix.lower() != ".gguf":
        raise ExportError(f"{out}: a GGUF file's name ends in .gguf")
    if out.exists() and not request.overwrite:
        raise ExportError(f"{out} already exists: choose another name, or delete it first")
    try:
        model_dir = resolve_model(request.model_spec)
    except ModelError as exc:
        raise ExportError(str(exc)) from None
    info = prepare(
        model_dir,
        request.adapter_dir,
        name=request.name or _model_title(request.model_spec),
        base_model=request.model_spec,
        run_id=request.run_id,
        train_context_length=request.train_context_length,
    )
    if request.project_name:
        info.extra["project"] = request.project_name
    checking = request.parity and bool(request.prompts)
    # Shares of the progress bar: loading, the adapter's answers, writing, reading back.
    share = (0.05, 0.25, 0.35, 0.35) if checking else (0.1, 0.0, 0.9, 0.0)

    def report(at: float, message: str) -> None:
        if progress is not None:
            progress(min(1.0, at), message)

    def stop_if_asked(what: str) -> None:
        if should_stop is not None and should_stop():
            raise ExportStopped(f"The export to {out.name} was stopped {what}; no file was written")

    report(0.0, "Loading the model")
    try:
        tokenizer = load_tokenizer(info.tokenizer_dir)
    except ModelError as exc:
        raise ExportError(str(exc)) from None
    tuned, _ = load_tuned(request.model_spec, request.adapter_dir)
    stop_if_asked("while loading")
    generation_eos = stop_token_ids(tuned, tokenizer)
    reference: list[parity.Answer] = []
    if checking:

        def answered(done: int, total: int) -> None:
            report(share[0] + share[1] * done / total, f"The adapter answers prompt {done} of {total}")

        report(share[0], "The adapter answers the prompts")
        reference = parity.answers(
            tuned, tokenizer, request.prompts, generation_eos, request.max_new_tokens, should_stop, answered
        )
        stop_if_asked("while the adapter answered")
    model = merged(tuned)
    start = share[0] + share[1]
    written = write_gguf(
        model,
        tokenizer,
        info,
        out,
        quant,
        lambda f, m: report(start + share[2] * f, m),
        should_stop,
        generation_eos,
    )
    del model, tuned
    gc.collect()
    result = GGUFReport(written)
    if request.ollama_dir is not None:
        from ftstudio.engine.ollama import model_name, write_modelfile

        stop_texts = [tokenizer.convert_ids_to_tokens(i) for i in written.stop_ids]
        name = model_name(request.project_name, request.run_id or _model_title(request.model_spec), quant)
        result.modelfile = write_modelfile(
            request.ollama_dir, out, name, tokenizer, stop_texts, request.system_prompt
        )
    if not checking:
        result.parity_note = (
            "The parity check was turned off."
            if not request.parity
            else "The parity check was skipped: the project has no examples to ask."
        )
        report(1.0, "Done")
        return result
    start = sum(share[:3])

    def read_back(done: int, total: int) -> None:
        report(start + share[3] * done / total, f"The exported file answers prompt {done} of {total}")

    report(start, "Reading the file back with transformers' GGUF loader")
    try:
        result.parity.append(
            parity.check_with_transformers(
                out, reference, request.prompts, quant, request.max_new_tokens, should_stop, read_back
            )
        )
    except Exception as exc:  # the file stays; the reader's complaint is the finding
        result.parity.append(
            parity.ParityReport(
                "transformers",
                quant,
                len(reference),
                0,
                0,
                None,
                0,
                False,
                f"transformers could not read the file back: {type(exc).__name__}: {exc}",
            )
        )
    if should_stop is not None and should_stop():
        result.parity_note = f"The check was stopped before it finished; {out.name} is complete and kept."
        return result
    if parity.llama_cpp_available():
        report(0.99, "Asking llama.cpp")
        try:
            result.parity.append(
                parity.check_with_llama_cpp(
                    out, reference, request.prompts, quant, request.max_new_tokens, should_stop=should_stop
                )
            )
        except Exception as exc:
            result.parity_note = f"llama.cpp could not run the file: {type(exc).__name__}: {exc}"
    else:
        result.parity_note = (
            "llama.cpp's own reading was not checked: llama-cpp-python is not installed "
            "(pip install 'ftstudio[llama]')."
        )
    report(1.0, "Done")
    return result
