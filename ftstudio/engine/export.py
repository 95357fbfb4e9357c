"""Taking a run's result out of FT Studio: the adapter as it is (PEFT
format), or a full model with the adapter merged into its weights
(Hugging Face format, safetensors), for tools that know nothing of adapters.

Both are written to a temporary folder beside the target and renamed into
place, so a failed export never leaves half a model behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ftstudio.core.fileio import disk_full_message, is_disk_full, tree_size
from ftstudio.engine.inference import check_adapter_dir
from ftstudio.engine.models import ModelError, load_tokenizer, resolve_model


class ExportError(Exception):
    """An export that cannot be done, with what to do instead."""


def _target(out: Path | str) -> Path:
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not empty: choose a new folder to export to")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _fresh_tmp(out: Path) -> Path:
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _move_into_place(tmp: Path, out: Path) -> Path:
    if out.exists():
        out.rmdir()  # checked empty by _target
    tmp.rename(out)
    return out


def export_adapter(adapter_dir: Path | str, out: Path | str) -> Path:
    """Copy the PEFT adapter in ``adapter_dir`` (with its tokenizer files) to the new folder ``out``."""
    problem = check_adapter_dir(adapter_dir)
    if problem:
        raise ExportError(problem)
    out = _target(out)
    tmp = _fresh_tmp(out)
    try:
        _copy_adapter(Path(adapter_dir), tmp)
        return _move_into_place(tmp, out)
    except OSError as exc:
        if is_disk_full(exc):
            raise ExportError(_disk_full(out, tree_size(Path(adapter_dir)))) from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_adapter(adapter_dir: Path, tmp: Path) -> None:
    shutil.copytree(adapter_dir, tmp)


def _disk_full(out: Path, needed: int | None) -> str:
    return disk_full_message(
        f"exporting {out.name}",
        out.parent,
        needed,
        "Nothing was exported (the partial copy was removed); the run itself is unchanged.",
    )


def _saved_dtype(model_dir: Path) -> Any:
    """The dtype the base was published in, read before loading (loading in fp32 rewrites config.dtype)."""
    import torch
    from transformers import AutoConfig

    saved = getattr(AutoConfig.from_pretrained(str(model_dir)), "dtype", None) or torch.float32
    if isinstance(saved, str):
        saved = getattr(torch, saved, torch.float32)
    return saved if isinstance(saved, torch.dtype) else torch.float32


def load_tuned(model_spec: str, adapter_dir: Path | str | None) -> tuple[Any, Path]:
    """(model, model_dir): the base in fp32 with the run's adapter on top (PEFT), or the base alone.

    The base is loaded unquantised (an adapter trained with QLoRA merges into the
    full-precision weights); ``merge_and_unload()`` on the result gives the merged model.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if adapter_dir is not None:
        problem = check_adapter_dir(adapter_dir)
        if problem:
            raise ExportError(problem)
    if not model_spec:
        raise ExportError("The run does not name its base model; export the adapter instead")
    try:
        model_dir = resolve_model(model_spec)
    except ModelError as exc:
        raise ExportError(str(exc)) from None
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True)
    base.eval()
    if adapter_dir is None:
        return base, model_dir
    try:
        tuned = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ExportError(f"The adapter in {adapter_dir} does not fit {model_spec}: {exc}") from None
    tuned.eval()
    return tuned, model_dir


def merged(model: Any) -> Any:
    """The model with its adapter (if any) folded into the weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def export_merged(model_spec: str, adapter_dir: Path | str, out: Path | str) -> Path:
    """Write base model ``model_spec`` with the adapter merged in, as a plain Hugging Face model folder,
    saved in the base's own dtype."""
    problem = check_adapter_dir(adapter_dir)
    if problem:
        raise ExportError(problem)
    if not model_spec:
        raise ExportError("The run does not name its base model; export the adapter instead")
    out = _target(out)
    try:
        model_dir = resolve_model(model_spec)
        tokenizer = load_tokenizer(model_dir)
    except ModelError as exc:
        raise ExportError(str(exc)) from None
    saved_dtype = _saved_dtype(model_dir)
    tuned, _ = load_tuned(model_spec, adapter_dir)
    model = merged(tuned)
    if saved_dtype != model.dtype:
        model = model.to(saved_dtype)
    tmp = _fresh_tmp(out)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        return _move_into_place(tmp, out)
    except Exception as exc:  # safetensors and torch word a full disk in their own ways
        if is_disk_full(exc):
            needed = sum(p.numel() * p.element_size() for p in model.parameters())
            raise ExportError(_disk_full(out, needed)) from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
