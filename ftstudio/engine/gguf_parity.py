"""Does the exported GGUF answer like the adapter did?

The file is read back by readers that are not our writer: transformers' own
GGUF loader (``from_pretrained(..., gguf_file=)``, with the tokenizer and the
chat template it finds in the file) and, where ``llama-cpp-python`` is
installed, the llama.cpp runtime itself. Each is asked the same held-out
prompts as the PEFT model, greedily, and the check reports:

- how many answers are identical to the adapter's;
- the largest difference in next-token log-probability along the adapter's
  answers (teacher-forced, so one early difference does not hide the rest);
- whether generation stops where the adapter's did (same length, ended by
  an end-of-turn token rather than the length limit, or both not);
- prompts the file's tokenizer or template turns into different tokens.

f16 / bf16 must match on every prompt; quantised files get their figures
and a verdict in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftstudio.engine.tokenize import encode_prompt

EXACT_QUANTS = ("f16", "bf16")
# Share of identical answers a quantised file needs for the check to pass.
PASS_SHARE = {"q8_0": 0.75}
DEFAULT_PASS_SHARE = 0.5


@dataclass
class Answer:
    prompt_ids: list[int]
    answer_ids: list[int]  # without the stop token
    text: str
    stopped: bool  # ended by a stop token (not by the length limit)
    stop_id: int | None = None  # the token that ended it
    logprobs: list[float] = field(
        default_factory=list
    )  # of each answer token (and the stop token), teacher-forced


def _generate(
    model: Any, prompt_ids: list[int], stop_ids: list[int], max_new_tokens: int, pad_id: int | None
) -> tuple[list[int], int | None]:
    import torch

    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=stop_ids,
            pad_token_id=pad_id if pad_id is not None else stop_ids[0],
            use_cache=True,
        )
    new = [int(t) for t in out[0, len(prompt_ids) :].tolist()]
    for k, t in enumerate(new):
        if t in stop_ids:
            return new[:k], t
    return new, None


def token_logprobs(model: Any, prompt_ids: list[int], continuation: list[int]) -> list[float]:
    """log p(token) of each token of ``continuation`` after ``prompt_ids``, in one forward pass."""
    import torch

    if not continuation:
        return []
    ids = torch.tensor([prompt_ids + continuation])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(v) for v in logp.gather(1, torch.tensor(continuation).unsqueeze(1)).squeeze(1).tolist()]


def answers(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, Any]]],
    stop_ids: list[int],
    max_new_tokens: int,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    prompt_ids: list[list[int]] | None = None,
    score_along: list[Answer] | None = None,
) -> list[Answer]:
    """Greedy answers of ``model`` to each conversation's prompt, with log-probs along ``score_along``
    (the reference's answers) or, without it, along its own."""
    out: list[Answer] = []
    for k, conv in enumerate(conversations):
        if should_stop is not None and should_stop():
            break
        ids = prompt_ids[k] if prompt_ids is not None else encode_prompt(tokenizer, list(conv))
        new, stop_id = _generate(model, ids, stop_ids, max_new_tokens, tokenizer.pad_token_id)
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        along = (
            score_along[k]
            if score_along is not None
            else Answer(ids, new, text, stop_id is not None, stop_id)
        )
        follow = along.answer_ids + ([along.stop_id] if along.stop_id is not None else [])
        out.append(Answer(ids, new, text, stop_id is not None, stop_id, token_logprobs(model, ids, follow)))
        if progress is not None:
            progress(k + 1, len(conversations))
    return out


@dataclass
class ParityReport:
    reader: str  # "transformers" | "llama.cpp"
    quant: str
    prompts: int
    identical: int
    stops_agree: int
    max_logprob_diff: float | None
    tokenised_differently: int
    passed: bool
    verdict: str
    differences: list[dict[str, Any]] = field(default_factory=list)  # the first few prompts that differ

    @property
    def share(self) -> float:
        return self.identical / self.prompts if self.prompts else 0.0

    def summary(self) -> str:
        diff = "n/a" if self.max_logprob_diff is None else f"{self.max_logprob_diff:.4f}"
        lines = [
            f"{self.reader}: {self.identical} of {self.prompts} greedy answers identical to the adapter's; "
            f"largest next-token log-prob difference {diff}; generation stops where the adapter's did on "
            f"{self.stops_agree} of {self.prompts}.",
            f"  {'PASSED' if self.passed else 'FAILED'}: {self.verdict}",
        ]
        for d in self.differences[:3]:
            lines.append(f"  prompt {d['prompt']}: adapter {d['adapter']!r} / file {d['file']!r}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"share": self.share}


def compare(reference: list[Answer], exported: list[Answer], quant: str, reader: str) -> ParityReport:
    """The figures and the verdict for answers from the exported file against the adapter's."""
    n = min(len(reference), len(exported))
    identical = stops = retokenised = 0
    worst: float | None = None
    differences = []
    for k in range(n):
        ref, got = reference[k], exported[k]
        same = ref.text == got.text
        identical += int(same)
        stop_same = ref.stopped == got.stopped and (
            not ref.stopped or len(ref.answer_ids) == len(got.answer_ids)
        )
        stops += int(stop_same)
        if ref.prompt_ids != got.prompt_ids:
            retokenised += 1
        if ref.logprobs and got.logprobs and len(ref.logprobs) == len(got.logprobs):
            d = max(abs(a - b) for a, b in zip(ref.logprobs, got.logprobs))
            worst = d if worst is None else max(worst, d)
        if not same or not stop_same:
            differences.append(
                {
                    "prompt": k + 1,
                    "adapter": ref.text[:120],
                    "file": got.text[:120],
                    "adapter_stopped": ref.stopped,
                    "file_stopped": got.stopped,
                }
            )
    passed, verdict = _verdict(quant, n, identical, stops, retokenised, worst)
    return ParityReport(reader, quant, n, identical, stops, worst, retokenised, passed, verdict, differences)


def _verdict(
    quant: str, n: int, identical: int, stops: int, retokenised: int, worst: float | None
) -> tuple[bool, str]:
    if n == 0:
        return False, "No prompts were compared."
    diff = "" if worst is None else f" (largest log-prob difference {worst:.3f})"
    if retokenised:
        return False, (
            f"The file's tokenizer or chat template turns {retokenised} of {n} prompts into different "
            "tokens than the run used, so the model is asked something else: a template or "
            "special-token problem. The file was kept."
        )
    if quant in EXACT_QUANTS:
        if identical == n and stops == n:
            return True, f"Every answer matches the adapter's{diff}."
        what = []
        if identical < n:
            what.append(f"{n - identical} answer{'s' * (n - identical != 1)} differ")
        if stops < n:
            what.append(f"generation stops elsewhere on {n - stops} prompt{'s' * (n - stops != 1)}")
        return False, (
            f"An unquantised export must answer exactly like the adapter, but {' and '.join(what)}"
            f"{diff}. The file was kept; compare the answers below."
        )
    share = identical / n
    need = PASS_SHARE.get(quant, DEFAULT_PASS_SHARE)
    if share == 1.0:
        words = (
            f"Every answer is the same as the adapter's{diff}: {quant} loses nothing you would notice here."
        )
    elif share >= 0.75:
        words = (
            f"Nearly the same as the adapter: {identical} of {n} answers identical, the others differ in "
            f"wording{diff}."
        )
    elif share >= 0.5:
        words = (
            f"Mostly the same: {identical} of {n} answers identical{diff}. Check it on your own prompts, or "
            "export q8_0 or f16 for answers closer to the adapter's."
        )
    else:
        words = (
            f"Answers differ from the adapter's on most prompts ({identical} of {n} identical{diff}): this "
            "quantisation loses much of what the fine-tune learnt. Export q8_0 or f16 instead."
        )
    if stops < n:
        words += f" Generation stops elsewhere on {n - stops} of {n} prompts."
    passed = share >= need
    if not passed:
        words += f" (The check asks for at least {need:.0%} identical answers at {quant}; the file was kept.)"
    return passed, words


def gguf_stop_ids(path: Path | str) -> list[int]:
    """The end-of-generation ids the file declares: EOS, end of turn, end of message."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    out = []
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        if key in fields:
            value = int(fields[key].contents())
            if value not in out:
                out.append(value)
    return out


def load_with_transformers(path: Path | str) -> tuple[Any, Any]:
    """(model, tokenizer) as transformers' GGUF loader reads the file: weights, config, tokenizer, template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def check_with_transformers(
    path: Path | str,
    reference: list[Answer],
    conversations: Sequence[list[dict]],
    quant: str,
    max_new_tokens: int,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ParityReport:
    model, tokenizer = load_with_transformers(path)
    stops = gguf_stop_ids(path)
    if not stops:
        return ParityReport(
            "transformers",
            quant,
            len(reference),
            0,
            0,
            None,
            0,
            False,
            "The file declares no end-of-sequence token, so no reader knows where an answer ends.",
        )
    got = answers(
        model,
        tokenizer,
        conversations[: len(reference)],
        stops,
        max_new_tokens,
        should_stop,
        progress,
        score_along=reference,
    )
    return compare(reference, got, quant, "transformers")


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def check_with_llama_cpp(
    path: Path | str,
    reference: list[Answer],
    conversations: Sequence[list[dict]],
    quant: str,
    max_new_tokens: int,
    context: int = 2048,
    should_stop: Callable[[], bool] | None = None,
) -> ParityReport:
    """The llama.cpp runtime's answers, with the chat template it takes from the file."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=context, verbose=False, logits_all=False, seed=0)
    got: list[Answer] = []
    for k, conv in enumerate(conversations[: len(reference)]):
        if should_stop is not None and should_stop():
            break
        messages = [m for m in conv]
        if messages and messages[-1].get("role") == "assistant":
            messages = messages[:-1]
        result = llm.create_chat_completion(
            messages=messages, temperature=0.0, top_k=1, max_tokens=max_new_tokens
        )
        choice = result["choices"][0]
        text = str(choice["message"].get("content") or "").strip()
        ref = reference[k]
        got.append(Answer(ref.prompt_ids, [], text, choice.get("finish_reason") == "stop"))
    report = compare(reference, got, quant, "llama.cpp")
    # llama.cpp counts tokens its own way; stop agreement here is "both ended by a stop token".
    report.stops_agree = sum(int(r.stopped == g.stopped) for r, g in zip(reference, got))
    report.max_logprob_diff = None
    return report


def held_out_prompts(
    eval_conversations: Sequence[list[dict]], train_conversations: Sequence[list[dict]], limit: int
) -> tuple[list[list[dict]], str]:
    """Up to ``limit`` conversations to ask: the held-out ones, or training ones when none are held out."""
    if eval_conversations:
        return [list(c) for c in eval_conversations[:limit]], "held-out"
    return [list(c) for c in train_conversations[:limit]], "training (the project holds none out)"


def finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value
