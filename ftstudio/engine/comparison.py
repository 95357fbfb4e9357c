"""Running the same prompts through the base model and several adapters.

``ComparisonEngine`` loads the base model once (through ``Generator``) and
adds each adapter on top of it the first time it is asked for, so switching
between columns never reloads weights. ``run_prompts`` walks prompt by
prompt and model in batches (``batch_generation``: every model's rows in
one batch where PEFT allows it), with one ``SamplingSettings`` for all,
streaming pieces through callbacks; the caller decides what to store and
show.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ftstudio.core.ratings import ADAPTER_PREFIX, BASE_PREFIX, RUN_PREFIX
from ftstudio.engine.models import ModelError

if TYPE_CHECKING:
    from ftstudio.engine.evaluation import EvalResult
    from ftstudio.engine.inference import Generator, SamplingSettings


@dataclass(frozen=True)
class ModelRef:
    """One column: ``key`` is the ratings model key; ``adapter_dir`` None for the base model."""

    key: str
    label: str
    adapter_dir: Path | None = None

    @property
    def is_base(self) -> bool:
        return self.adapter_dir is None


@dataclass(frozen=True)
class PromptItem:
    messages: list[dict[str, Any]]  # up to the user turn to answer
    example_id: int | None = None
    reference: str | None = None
    label: str | None = None


class ComparisonError(Exception):
    """A model or adapter that cannot be used, in words a user can act on."""


def settings_dict(settings: SamplingSettings) -> dict[str, Any]:
    """The sampling settings as stored beside each generation."""
    return dataclasses.asdict(settings)


def adapter_problem(path: Path | str) -> str | None:
    """None when ``path`` holds a PEFT adapter that can be loaded, else why not."""
    from ftstudio.engine.inference import check_adapter_dir

    return check_adapter_dir(Path(path))


class ComparisonEngine:
    """The base model, loaded once on first use, with adapters added on demand."""

    def __init__(self, base_spec: str, device: str = "auto", four_bit: bool = False) -> None:
        self.base_spec = base_spec
        self.device = device
        self.four_bit = four_bit  # the base in 4-bit, as QLoRA runs trained (inference.loads_in_4bit)
        self._generator: Generator | None = None
        self._names: dict[str, str] = {}  # model key -> adapter name inside the generator

    @property
    def loaded(self) -> bool:
        return self._generator is not None

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from ftstudio.engine.inference import Generator

            self._generator = Generator(self.base_spec, device=self.device, four_bit=self.four_bit)
        return self._generator

    def ensure(self, refs: Sequence[ModelRef]) -> None:
        """Load the base model and add every adapter of ``refs`` not added yet."""
        gen = self.generator
        for ref in refs:
            if ref.adapter_dir is None or ref.key in self._names:  # the base model, or added already
                continue
            problem = adapter_problem(ref.adapter_dir)
            if problem:
                raise ComparisonError(f"{ref.label}: {problem}")
            # Adapter names become module keys: keep them free of dots and slashes.
            name = f"adapter{len(self._names)}"
            try:
                gen.add_adapter(name, str(ref.adapter_dir))
            except ModelError as exc:  # already in words
                raise ComparisonError(f"{ref.label}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - a wrong base or a broken file, told in words
                raise ComparisonError(
                    f"{ref.label} could not be put on {self.base_spec}: {exc}. It may have been trained "
                    "on a different base model; choose that base model to compare it."
                ) from exc
            self._names[ref.key] = name

    def adapter_name(self, key: str) -> str | None:
        """The adapter's name inside the generator (None for the base model or one not added)."""
        return self._names.get(key)

    def model_name(self, ref: ModelRef) -> str:
        return "base" if ref.is_base else self._names[ref.key]

    def generate(self, ref: ModelRef, messages: list[dict[str, Any]], settings: SamplingSettings | None,
                 on_token: Callable[[str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> str:
        self.ensure([ref])
        return self.generator.generate(messages, model=self.model_name(ref), settings=settings,
                                       on_token=on_token, should_stop=should_stop)

    def generate_batch(self, items: Sequence[tuple[ModelRef, list[dict[str, Any]]]], settings: SamplingSettings | None,
                       on_piece: Callable[[int, str], None] | None = None,
                       on_answer: Callable[[int, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> list[str | None]:
        """Answers to (model, messages) ``items``, batched (see ``batch_generation.generate_batch``)."""
        from ftstudio.engine.batch_generation import Request, generate_batch

        self.ensure([ref for ref, _m in items])
        requests = [Request(messages, self.model_name(ref)) for ref, messages in items]
        return generate_batch(self.generator, requests, settings, on_piece=on_piece, on_answer=on_answer,
                                             should_stop=should_stop)

    def evaluate(self, ref: ModelRef, conversations: list[list[dict[str, Any]]],
                 example_ids: Sequence[int] | None = None,
                 max_length: int = 512, exact_match: bool | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, shots: Sequence[Any] = (),
                 labels: Sequence[str] | None = None) -> EvalResult:
        """Held-out loss, perplexity and (for short answers) exact match and label scores of one model,
        with ``shots`` in its prompt (a few-shot baseline) when given.

        The result's ``model`` names the column (its model key), not the
        adapter's name inside the generator.
        """
        from ftstudio.engine.evaluation import evaluate

        self.ensure([ref])
        result = evaluate(self.generator, conversations, example_ids=example_ids, model=self.model_name(ref),
                          max_length=max_length, exact_match=exact_match, progress=progress,
                          should_stop=should_stop, shots=shots, labels=labels)
        result.model = ref.key
        return result

    def close(self) -> None:
        self._generator = None
        self._names.clear()
        import gc
        import sys

        gc.collect()
        torch = sys.modules.get("torch")  # never imported just to free memory
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_prompts(engine: ComparisonEngine, refs: Sequence[ModelRef], prompts: Sequence[PromptItem],
                settings: SamplingSettings | None,
                on_piece: Callable[[int, str, str], None] | None = None,
                on_output: Callable[[int, str, str], None] | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> list[dict[str, str]]:
    """Answer every prompt with every model, with the same settings, in batches.

    ``on_piece(prompt_index, model_key, text)`` gets each streamed piece;
    ``on_output(prompt_index, model_key, answer)`` each finished answer (not
    called for an answer cut short by a stop). Answers come in the order the
    batches finish them, not prompt by prompt. Returns the finished answers of
    each prompt reached (a prompt none of whose answers finished is left out
    at the end).
    """
    engine.ensure(refs)
    cells = [(i, ref) for i in range(len(prompts)) for ref in refs]
    answers = engine.generate_batch(
        [(ref, prompts[i].messages) for i, ref in cells], settings,
        on_piece=(lambda n, text: on_piece(cells[n][0], cells[n][1].key, text)) if on_piece else None,
        on_answer=(lambda n, text: on_output(cells[n][0], cells[n][1].key, text)) if on_output else None,
        should_stop=should_stop)
    out: list[dict[str, str]] = [{} for _ in prompts]
    for (i, ref), answer in zip(cells, answers):
        if answer is not None:
            out[i][ref.key] = answer
    while out and not out[-1]:
        out.pop()
    return out


def ref_for_key(key: str, label: str, project_runs_dir: Path | None = None) -> ModelRef:
    """The ModelRef of a stored model key (the run's adapter folder for ``run:`` keys)."""
    if key.startswith(BASE_PREFIX):
        return ModelRef(key, label, None)
    if key.startswith(RUN_PREFIX):
        if project_runs_dir is None:
            raise ValueError("a run key needs the project's runs folder")
        from ftstudio.core.project import run_folder  # a stored key must not name a folder outside runs/

        return ModelRef(key, label, run_folder(Path(project_runs_dir), key[len(RUN_PREFIX):]) / "adapter")
    if key.startswith(ADAPTER_PREFIX):
        return ModelRef(key, label, Path(key[len(ADAPTER_PREFIX):]))
    raise ValueError(f"unknown model key {key!r}")
