"""GGUF export of the bundled model with a short trained adapter: the file,
read back by transformers' GGUF loader, answers the held-out prompts as
``PeftModel.from_pretrained`` does (f16: every answer; q8_0: the share the
parity check reports, and its verdict)."""

from __future__ import annotations

import pytest

from ftstudio.core.demo import ensure_demo_project
from ftstudio.core.config import BUNDLED_MODEL, preset

PROMPTS = 6
NEW_TOKENS = 8  # the demo's answers are one word (a team's name) and the end-of-turn token


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, bundled_dir):
    from ftstudio.engine.training import train

    project = ensure_demo_project(tmp_path_factory.mktemp("gguf") / "demo.ftstudio")
    data = project.prepared_data()
    cfg = preset(
        "quick", max_steps=6, eval_every=0, samples=0, checkpoint_every=0, max_length=128, batch_tokens=512
    )
    run_id = project.create_run(cfg.to_dict())
    result = train(cfg, data, lambda event: None, lambda: False, run_dir=project.run_dir(run_id))
    assert result.status == "finished", result.failure
    project.update_run(run_id, status="finished", steps=result.steps)
    return project, run_id


def _independent_answers(generate, prompts) -> list[str]:
    return [generate(conv) for conv in prompts]


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_bundled_export_answers_like_the_adapter(trained_run, tmp_path, quant):
    import time

    import torch
    from gguf import GGUFReader

    from ftstudio.engine.gguf_export import export_gguf, request_for_run
    from ftstudio.engine.gguf_parity import PASS_SHARE, gguf_stop_ids, load_with_transformers
    from ftstudio.engine.inference import Generator, SamplingSettings
    from ftstudio.engine.tokenize import encode_prompt

    project, run_id = trained_run
    request = request_for_run(
        project, run_id, tmp_path / f"tuned-{quant}.gguf", quant, prompts=PROMPTS, max_new_tokens=NEW_TOKENS
    )
    started = time.perf_counter()
    report = export_gguf(request)
    print(
        f"{quant}: {report.written.size_bytes / 2**20:.1f} MiB, written in {report.written.seconds:.1f} s, "
        f"export and check {time.perf_counter() - started:.1f} s"
    )
    print("\n".join(report.lines()))
    [check] = [p for p in report.parity if p.reader == "transformers"]

    # The same comparison, made here without the check's code: the app's own generator
    # (base + PeftModel.from_pretrained) against the file as transformers reads it.
    generator = Generator(BUNDLED_MODEL)
    generator.add_adapter("tuned", project.run_dir(run_id) / "adapter")
    settings = SamplingSettings(temperature=0.0, max_new_tokens=NEW_TOKENS)
    adapter = _independent_answers(
        lambda c: generator.generate(c, model="tuned", settings=settings), request.prompts
    )
    model, tokenizer = load_with_transformers(report.written.path)
    stops = gguf_stop_ids(report.written.path)

    def from_file(conv):
        ids = torch.tensor([encode_prompt(tokenizer, conv)])
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
        return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()

    exported = _independent_answers(from_file, request.prompts)
    same = sum(a == b for a, b in zip(adapter, exported))
    print(f"{quant}: {same} of {len(adapter)} identical: {list(zip(adapter, exported))}")
    assert check.prompts == PROMPTS and check.identical == same
    assert check.tokenised_differently == 0
    if quant == "f16":
        assert same == PROMPTS and check.passed and check.stops_agree == PROMPTS, check.summary()
    else:
        assert check.passed == (check.share >= PASS_SHARE["q8_0"])
        assert check.passed, check.summary()

    fields = GGUFReader(str(report.written.path)).fields
    assert fields["tokenizer.chat_template"].contents() == generator.tokenizer.chat_template
    assert generator.tokenizer.convert_tokens_to_ids("<|im_end|>") in stops
    assert fields["ftstudio.run_id"].contents() == run_id
