"""Generation with the base model and any number of adapters on top of it.

``Generator`` loads the base model once (in 4-bit after QLoRA runs:
``loads_in_4bit``). Adapters are added to it by name
(PEFT keeps them side by side) and switched per call, so comparing five
adapters costs one model load. Each call renders the conversation through
the tokenizer's own chat template, exactly as training saw it, and can
stream its answer piece by piece and be stopped between tokens.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ftstudio.engine.models import ModelError, load_tokenizer, resolve_model, stop_token_ids
from ftstudio.engine.tokenize import IGNORE_INDEX, EncodedExample, encode_conversation, encode_prompt, fit_length

BASE = "base"


@dataclass(frozen=True)
class SamplingSettings:
    """One set of sampling settings, shared by every model in a comparison."""

    temperature: float = 0.0  # 0 means greedy: always the most likely token
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be 0 (greedy) or more")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be above 0 and at most 1")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def check_adapter_dir(path: Path | str) -> str | None:
    """None when ``path`` holds a PEFT LoRA adapter that can be loaded, else what is wrong, in words."""
    path = Path(path)
    if not path.is_dir():
        return f"{path} is not a folder"
    config = path / "adapter_config.json"
    if not config.is_file():
        return f"{path} has no adapter_config.json: choose the adapter folder of a run (runs/<id>/adapter)"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{config} cannot be read: {exc}"
    if not isinstance(data, dict) or data.get("peft_type") not in ("LORA", None):
        return f"{config} describes a {data.get('peft_type') if isinstance(data, dict) else 'unknown'} adapter; " \
               "only LoRA adapters are supported"
    if not (path / "adapter_model.safetensors").is_file():
        if (path / "adapter_model.bin").is_file():
            return f"{path} holds its weights as adapter_model.bin; FT Studio loads weights only from safetensors"
        return f"{path} has no adapter_model.safetensors"
    return None


def loads_in_4bit(run_configs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the base model for these runs' adapters loads in 4-bit: when any of them trained QLoRA.

    ``run_configs`` are the runs' stored settings (``Run.config``). A QLoRA run
    trained on a 4-bit base: answering from the same base keeps its answers
    as it learned them, and a model that trained on a card also answers on
    it. The base loads once for all compared adapters, so a LoRA adapter
    compared beside a QLoRA one answers from the 4-bit base too.
    """
    return any(str(c.get("method", "")).lower() == "qlora" for c in run_configs)


def _load_model(model_dir: Path, device: str, four_bit: bool = False) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if four_bit:
        from ftstudio.engine.loading import four_bit_kwargs

        model = AutoModelForCausalLM.from_pretrained(str(model_dir), trust_remote_code=False, use_safetensors=True,
                                                     **four_bit_kwargs(dtype, device))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, trust_remote_code=False,
                                                     use_safetensors=True)
        model.to(device)
    model.eval()
    return model


class _Streamer:
    """Receives token ids from ``generate`` and hands out text as soon as it is whole.

    The token that ends the answer (one of ``stop_ids``) is not part of it, special or not."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None] | None, stop_ids: Sequence[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.stop_ids = set(stop_ids)
        self.ids: list[int] = []
        self.sent = ""
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() hands the prompt over first
            self._prompt_seen = True
            return
        self.ids.extend(t for t in map(int, value.reshape(-1).tolist()) if t not in self.stop_ids)
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        # A multi-byte character split over two tokens decodes as U+FFFD until its second half comes.
        if not final and text.endswith("\ufffd"):
            return
        if text.startswith(self.sent) and len(text) > len(self.sent):
            piece, self.sent = text[len(self.sent):], text
            if self.on_text is not None:
                self.on_text(piece)


class Generator:
    """The base model ``model_spec`` plus named adapters, for generation and held-out loss."""

    def __init__(self, model_spec: str, device: str = "auto", four_bit: bool = False) -> None:
        """``four_bit``: the base in QLoRA's 4-bit NF4 (see ``loads_in_4bit``), else in bf16/fp32."""
        from ftstudio.engine.device import choose_device

        self.model_spec = model_spec
        self.device = choose_device(device)
        self.four_bit = four_bit
        self.model_dir = resolve_model(model_spec)
        self.tokenizer = load_tokenizer(self.model_dir)
        try:
            self.base = _load_model(self.model_dir, self.device, four_bit)
        except (OSError, ValueError) as exc:
            raise ModelError(f"Could not load the model from {self.model_dir}: {exc}") from None
        self._peft: Any = None  # the PeftModel once the first adapter is added
        self._adapters: dict[str, Path] = {}
        self._lock = threading.RLock()  # one generation at a time: adapters are switched on one model

    @property
    def stop_token_ids(self) -> list[int]:
        """Tokens that end an answer: the model's own (end of turn, for many chat models) and the tokenizer's."""
        return stop_token_ids(self.base, self.tokenizer)

    @property
    def adapters(self) -> list[str]:
        return list(self._adapters)

    def adapter_dir(self, name: str) -> Path:
        return self._adapters[name]

    def add_adapter(self, name: str, adapter_dir: Path | str) -> None:
        """Put the adapter in ``adapter_dir`` on the base model under ``name`` (loaded once)."""
        if name in (None, "", BASE):
            raise ValueError(f"'{name}' cannot name an adapter")
        if name in self._adapters:
            return
        problem = check_adapter_dir(adapter_dir)
        if problem:
            raise ModelError(problem)
        from peft import PeftModel

        with self._lock:
            try:
                if self._peft is None:
                    self._peft = PeftModel.from_pretrained(self.base, str(adapter_dir), adapter_name=name,
                                                           is_trainable=False)
                    self._peft.eval()
                else:
                    self._peft.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise ModelError(f"The adapter in {adapter_dir} does not fit {self.model_spec}: {exc}. "
                                 "Choose the base model it was trained on.") from None
        self._adapters[name] = Path(adapter_dir)

    @contextlib.contextmanager
    def use(self, model: str | None = None) -> Iterator[Any]:
        """The model to call with adapter ``model`` active (None or "base": no adapter)."""
        with self._lock:
            if model in (None, BASE):
                if self._peft is None:
                    yield self.base
                else:
                    with self._peft.disable_adapter():
                        yield self._peft
                return
            if model not in self._adapters:
                raise KeyError(f"No adapter named {model!r}; added: {', '.join(self._adapters) or 'none'}")
            self._peft.set_adapter(model)
            yield self._peft

    @property
    def has_adapters(self) -> bool:
        return self._peft is not None

    @contextlib.contextmanager
    def use_all(self) -> Iterator[Any]:
        """The PEFT model with every adapter loaded, for a batch whose rows name their own (``adapter_names``)."""
        with self._lock:
            if self._peft is None:
                raise KeyError("No adapters added")
            yield self._peft

    def prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """The tokens that ask for the next assistant turn (a final assistant turn is left out)."""
        return encode_prompt(self.tokenizer, list(messages))

    def generate(self, messages: Sequence[dict[str, Any]], model: str | None = None,
                 settings: SamplingSettings | None = None, on_token: Callable[[str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> str:
        """The assistant's answer to ``messages`` from ``model``; pieces go to ``on_token`` as they come."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        settings = settings or SamplingSettings()
        tok = self.tokenizer
        ids = torch.tensor([self.prompt_ids(messages)], device=self.device)

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
                stop = bool(should_stop()) if should_stop is not None else False
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        streamer = _Streamer(tok, on_token, self.stop_token_ids)
        sampling: dict[str, Any]
        if settings.greedy:
            sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        else:
            sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p,
                        "top_k": None}
        with self.use(model) as net, torch.no_grad():
            # The same seed gives the same sample for every model, so columns differ only by the model.
            torch.manual_seed(settings.seed)
            net.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                         max_new_tokens=settings.max_new_tokens, eos_token_id=self.stop_token_ids,
                         pad_token_id=tok.pad_token_id, streamer=streamer, use_cache=True,
                         stopping_criteria=StoppingCriteriaList([_Stop()]), **sampling)
        return tok.decode(streamer.ids, skip_special_tokens=True).strip()

    def loss_sums(self, conversations: Sequence[list[dict[str, Any]]], model: str | None = None,
                  max_length: int = 512, final_answer_only: bool = False) -> list[tuple[float, int]]:
        """(sum of token losses, loss tokens) per conversation, on the tokens training takes loss on.

        Conversations longer than ``max_length`` tokens are cut to it; one with
        no answer left gives (0.0, 0). Each runs on its own, so its sum is exact.
        ``final_answer_only``: earlier answers are prompt (few-shot turns), not loss.
        """
        import torch

        from ftstudio.engine.packing import collate
        from ftstudio.engine.loss import packed_loss_module

        out: list[tuple[float, int]] = []
        with self.use(model) as net, torch.no_grad():
            module = packed_loss_module(net)
            for conv in conversations:
                whole = encode_conversation(self.tokenizer, list(conv))
                if final_answer_only:
                    start = len(self.prompt_ids(conv))
                    whole = EncodedExample(whole.input_ids, [IGNORE_INDEX] * start + whole.labels[start:])
                enc = fit_length(whole, max_length, "truncate")
                if enc is None or enc.loss_tokens == 0:
                    out.append((0.0, 0))
                    continue
                b = collate([enc], [0])
                s, n = module(b.input_ids.to(self.device), b.position_ids.to(self.device),
                              loss_positions=b.loss_positions.to(self.device), targets=b.targets.to(self.device))
                out.append((float(s.item()), int(n)))
        return out
