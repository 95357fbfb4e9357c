"""What the Compare page runs on its worker thread.

Each function takes the usual ``report`` and ``interrupted`` of a ``workers.Job``,
imports the engine only when it runs (so the GUI starts without torch), and
reports plain tuples; the page stores and shows them on the GUI thread.
"""

from __future__ import annotations

from typing import Any, Sequence

from ftstudio.core.ratings import FEW_SHOT_MARK, run_id_of
from ftstudio.engine.comparison import ComparisonEngine, ModelRef, PromptItem


def _sampling(settings: dict[str, Any]):
    from ftstudio.engine.inference import SamplingSettings

    return SamplingSettings(**settings)


def compare_job(engine: ComparisonEngine, refs: Sequence[ModelRef], prompts: Sequence[PromptItem],
                settings: dict[str, Any], *, report, interrupted) -> int:
    """Every prompt through every model, streamed: ("piece"|"output", prompt index, model key, text)."""
    from ftstudio.engine.comparison import run_prompts

    report(("loading", None, None, ""))
    engine.ensure(refs)
    report(("loaded", None, None, ""))
    done = run_prompts(
        engine, refs, prompts, _sampling(settings),
        on_piece=lambda i, key, text: report(("piece", i, key, text)),
        on_output=lambda i, key, text: report(("output", i, key, text)),
        should_stop=interrupted,
    )
    return sum(len(a) for a in done)


def answers_job(engine: ComparisonEngine, wanted: Sequence[tuple[int, ModelRef]], prompts: Sequence[PromptItem],
                settings: dict[str, Any], *, report, interrupted) -> int:
    """The missing answers of a blind round, not streamed: ("output", prompt index, model key, text)."""
    report(("loading", None, None, ""))
    engine.ensure(list({ref.key: ref for _i, ref in wanted}.values()))
    report(("loaded", None, None, ""))
    n = 0

    def on_answer(k: int, text: str) -> None:
        nonlocal n
        report(("output", wanted[k][0], wanted[k][1].key, text))
        n += 1

    engine.generate_batch([(ref, prompts[i].messages) for i, ref in wanted], _sampling(settings),
                          on_answer=on_answer, should_stop=interrupted)
    return n


def evaluate_job(engine: ComparisonEngine, refs: Sequence[ModelRef], conversations: list[list[dict]],
                 example_ids: list[int], max_length: int, exact_match: bool | None, shots: Sequence[Any] = (),
                 labels: Sequence[str] | None = None, *, report, interrupted) -> int:
    """Held-out loss, perplexity, exact match and label scores per model: ("result", model key, results dict).

    A base model is measured zero-shot and, when ``shots`` are given, with them in its prompt too.
    """
    report(("loading", None, None))
    engine.ensure(refs)
    n = 0
    runs = [(ref, ()) for ref in refs] + [(ref, tuple(shots)) for ref in refs if ref.is_base and shots]
    for ref, ref_shots in runs:
        if interrupted():
            break
        key = ref.key + (f"{FEW_SHOT_MARK}{len(ref_shots)}" if ref_shots else "")
        report(("started", key, None))

        def progress(done: int, total: int, key: str = key) -> None:
            report(("progress", key, (done, total)))

        result = engine.evaluate(ref, conversations, example_ids=example_ids, max_length=max_length,
                                 exact_match=exact_match, should_stop=interrupted, shots=ref_shots, labels=labels,
                                 progress=progress)
        if interrupted():
            break
        results = result.to_dict()
        results["run"] = run_id_of(ref.key) or ("base" if ref.is_base else None)
        results["model"] = engine.base_spec
        report(("result", ref.key, results))
        n += 1
    return n


def chat_job(engine: ComparisonEngine, ref: ModelRef, messages: list[dict], settings: dict[str, Any], *,
             report, interrupted) -> str:
    """One assistant turn, streamed as ("piece", text)."""
    return engine.generate(ref, messages, _sampling(settings), on_token=lambda text: report(("piece", text)),
                           should_stop=interrupted)


def check_folder_job(folder: str, *, report, interrupted) -> str | None:
    from ftstudio.engine.comparison import adapter_problem

    return adapter_problem(folder)
