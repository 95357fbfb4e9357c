"""GGUF export: tiny random models of each supported shape read back by
transformers' own GGUF loader with the same logits; the metadata that decides
behaviour elsewhere; refusals in words; no partial file after a full disk or a
stop; K-quants only with llama.cpp's quantiser; the Ollama Modelfile."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from ftstudio.engine import gguf_export
from ftstudio.engine.export import ExportError
from ftstudio.engine.gguf_export import ExportStopped, GGUFRequest, export_gguf

PROMPTS = [
    [{"role": "user", "content": "Where is my parcel?"}],
    [{"role": "user", "content": "Refund please"}],
]


def _save_tiny(out: Path, config, small_vocab_tokenizer_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.models import load_tokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # norms away from 1 and biases away from 0, so a misplaced one shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                p.normal_(0, 0.1)
    model.save_pretrained(out, safe_serialization=True)
    load_tokenizer(small_vocab_tokenizer_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_qwen2_dir(tmp_path_factory, small_vocab_tokenizer_dir) -> Path:
    from transformers import Qwen2Config

    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(small_vocab_tokenizer_dir)
    config = Qwen2Config(
        # 64 rows past the tokenizer, as Qwen pads its embedding: those ids have no text
        vocab_size=len(tokenizer) + 64,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return _save_tiny(tmp_path_factory.mktemp("tiny-qwen2"), config, small_vocab_tokenizer_dir)


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def _gguf_logits(path: Path, ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return _logits(model.eval(), ids)


def _request(
    model_dir: Path, out: Path, quant: str = "f16", adapter: Path | None = None, **kw
) -> GGUFRequest:
    return GGUFRequest(
        model_spec=str(model_dir),
        adapter_dir=adapter,
        out=out,
        quant=quant,
        name="tiny",
        **({"parity": False} | kw),
    )


def _original(model_dir: Path):
    """The exported model as transformers loads it, in fp32: what a file is read back against."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def _stored_as(model, dtype):
    """``model`` with its matrices rounded to ``dtype`` as the file stores them (norms stay fp32)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(p.to(dtype).float())
    return model


def _export_with_parity(model_dir: Path, out: Path, adapter: Path):
    """An f16 export of ``adapter`` on ``model_dir`` with the parity check over both prompts."""
    return export_gguf(
        _request(model_dir, out, "f16", adapter, parity=True, prompts=PROMPTS, max_new_tokens=6)
    )


def test_tiny_qwen2_reads_back_with_the_same_logits(tiny_qwen2_dir, tmp_path):
    import torch

    report = export_gguf(_request(tiny_qwen2_dir, tmp_path / "qwen2.gguf"))
    path = report.written.path
    assert path.is_file() and report.written.tensor_types == {"F16": 2 + 2 * 7, "F32": 1 + 2 * 5}
    original = _original(tiny_qwen2_dir)
    ids = [1, 523, 42, 7, 901, 3, 17, 250]
    got = _gguf_logits(path, ids)
    # within f16 tolerance of the fp32 model ...
    torch.testing.assert_close(got, _logits(original, ids), rtol=2e-2, atol=2e-2)
    # ... and equal to the same model with its matrices rounded to f16 as the file stores them
    rounded = _stored_as(original, torch.float16)
    torch.testing.assert_close(got, _logits(rounded, ids), rtol=1e-4, atol=1e-4)


def test_tiny_qwen3_with_its_query_key_norms_reads_back(small_vocab_tokenizer_dir, tmp_path):
    import torch
    from transformers import Qwen3Config

    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(small_vocab_tokenizer_dir)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=128,  # transformers reads 128 back
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    folder = _save_tiny(tmp_path / "qwen3", config, small_vocab_tokenizer_dir, seed=3)
    path = export_gguf(_request(folder, tmp_path / "qwen3.gguf", "bf16")).written.path
    rounded = _stored_as(_original(folder), torch.bfloat16)
    ids = [1, 88, 400, 12, 5]
    torch.testing.assert_close(_gguf_logits(path, ids), _logits(rounded, ids), rtol=1e-4, atol=1e-4)


def test_metadata_holds_the_template_stop_ids_tokenizer_and_run(
    small_vocab_model_dir, lora_adapter, tmp_path
):
    from gguf import GGUFReader

    from ftstudio.engine.models import load_tokenizer

    adapter = lora_adapter(small_vocab_model_dir, tmp_path / "adapter", seed=2)
    tokenizer = load_tokenizer(small_vocab_model_dir)
    tokenizer.save_pretrained(adapter)  # as training saves it beside the adapter
    out = tmp_path / "run.gguf"
    export_gguf(
        _request(
            small_vocab_model_dir,
            out,
            "q8_0",
            adapter,
            run_id="20261201-101500-ab12",
            train_context_length=256,
            project_name="Tickets",
        )
    )
    fields = GGUFReader(str(out)).fields

    def value(key):
        return fields[key].contents()

    assert value("tokenizer.chat_template") == tokenizer.chat_template
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert value("tokenizer.ggml.eos_token_id") == im_end and value("tokenizer.ggml.eot_token_id") == im_end
    assert value("tokenizer.ggml.padding_token_id") == tokenizer.pad_token_id
    assert value("tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert value("tokenizer.ggml.model") == "gpt2"
    tokens = value("tokenizer.ggml.tokens")
    assert len(tokens) == len(tokenizer) and tokens[im_end] == "<|im_end|>"
    assert value("tokenizer.ggml.token_type")[im_end] == 3  # CONTROL: kept whole, never split
    merges = json.loads((small_vocab_model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"][
        "merges"
    ]
    assert value("tokenizer.ggml.merges") == [" ".join(m) for m in merges]  # every merge, in rank order
    assert value("general.finetune") == "20261201-101500-ab12"
    assert value("ftstudio.run_id") == "20261201-101500-ab12"
    assert value("ftstudio.train_context_length") == 256
    assert value("general.base_model.0.name") == str(small_vocab_model_dir)
    assert value("llama.context_length") == 2048  # the model's own range, not the fine-tuning length
    assert value("general.file_type") == 7  # MOSTLY_Q8_0

    from transformers import AutoTokenizer

    read = AutoTokenizer.from_pretrained(str(out.parent), gguf_file=out.name)
    text = "Hello, my order #12345 hasn't arrived! <|im_end|>"
    assert read(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert read.apply_chat_template(
        PROMPTS[0], add_generation_prompt=True, tokenize=False
    ) == tokenizer.apply_chat_template(PROMPTS[0], add_generation_prompt=True, tokenize=False)


def test_parity_check_on_an_adapter_passes_for_f16(small_vocab_model_dir, lora_adapter, tmp_path):
    adapter = lora_adapter(small_vocab_model_dir, tmp_path / "adapter", seed=4)
    report = _export_with_parity(small_vocab_model_dir, tmp_path / "t.gguf", adapter)
    [check] = report.parity
    assert check.reader == "transformers" and check.prompts == 2
    # A random tiny model's next-token distribution is nearly flat, so an f16 rounding can flip a
    # greedy pick; the bundled model shows identical answers (test_gguf_bundled). Here: the same
    # tokens asked, the same stops, log-probs within f16 rounding, and the f16 rule applied.
    assert check.tokenised_differently == 0 and check.stops_agree == 2, check.summary()
    assert check.max_logprob_diff is not None and check.max_logprob_diff < 0.01
    assert check.passed == (check.identical == 2)
    assert ("Every answer matches" in check.verdict) == check.passed
    assert "llama-cpp-python" in report.parity_note or len(report.parity) == 2


def test_parity_check_names_a_wrong_stop_token(small_vocab_model_dir, lora_adapter, tmp_path, monkeypatch):
    """A file that forgets the end-of-turn token fails the check and says generation stops elsewhere."""
    from ftstudio.engine import gguf_parity

    adapter = lora_adapter(small_vocab_model_dir, tmp_path / "adapter", seed=4)
    reference = None

    real_answers = gguf_parity.answers

    def answers_stopping_early(model, tokenizer, conversations, stop_ids, max_new_tokens, *args, **kwargs):
        nonlocal reference
        got = real_answers(model, tokenizer, conversations, stop_ids, max_new_tokens, *args, **kwargs)
        if reference is None:  # the adapter's pass: pretend it ended after its first token
            for a in got:
                a.answer_ids, a.stopped, a.stop_id = a.answer_ids[:1], True, stop_ids[0]
                a.text = tokenizer.decode(a.answer_ids, skip_special_tokens=True).strip()
            reference = got
        return got

    monkeypatch.setattr(gguf_parity, "answers", answers_stopping_early)
    report = _export_with_parity(small_vocab_model_dir, tmp_path / "t.gguf", adapter)
    [check] = report.parity
    assert not check.passed and "stops elsewhere" in check.verdict
    assert report.written.path.is_file()  # a failed check keeps the file


def test_q4_0_keeps_the_embedding_at_8_bits_and_reads_back(small_vocab_model_dir, tmp_path):
    from gguf import GGUFReader

    out = export_gguf(_request(small_vocab_model_dir, tmp_path / "q4.gguf", "q4_0")).written.path
    types = {t.name: t.tensor_type.name for t in GGUFReader(str(out)).tensors}
    assert types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.attn_q.weight"] == "Q4_0" and types["blk.1.ffn_down.weight"] == "Q4_0"
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert _gguf_logits(out, [1, 2, 3]).isfinite().all()


def test_an_unsupported_architecture_is_refused_before_work_starts(small_vocab_tokenizer_dir, tmp_path):
    from transformers import GPT2Config

    folder = _save_tiny(
        tmp_path / "gpt2",
        GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=1024),
        small_vocab_tokenizer_dir,
    )
    with pytest.raises(ExportError, match=r"'gpt2' architecture \(GPT2LMHeadModel\)"):
        export_gguf(_request(folder, tmp_path / "out.gguf"))
    assert list(tmp_path.glob("*.gguf")) == [] and list(tmp_path.glob(".*partial")) == []


def test_a_full_disk_leaves_no_partial_file(small_vocab_model_dir, tmp_path, monkeypatch):
    written = []
    real = gguf_export._write_tensor

    def full_after_three(writer, data):
        # Stands for the disk filling up part-way: the OS refuses the fourth tensor's bytes.
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        real(writer, data)

    monkeypatch.setattr(gguf_export, "_write_tensor", full_after_three)
    with pytest.raises(ExportError, match="disk .* is full; no file was written"):
        export_gguf(_request(small_vocab_model_dir, tmp_path / "full.gguf"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_stop_mid_write_leaves_no_partial_file(small_vocab_model_dir, tmp_path):
    progress = []

    def report_progress(fraction, message):
        return progress.append(message)

    with pytest.raises(ExportStopped, match="stopped"):
        export_gguf(
            _request(small_vocab_model_dir, tmp_path / "stopped.gguf"),
            report_progress,
            lambda: sum(m.startswith("Writing") for m in progress) >= 5,
        )
    assert sum(m.startswith("Writing") for m in progress) == 5  # it was stopped mid-write, not before
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_existing_file_is_not_overwritten_unless_asked(small_vocab_model_dir, tmp_path):
    out = tmp_path / "there.gguf"
    out.write_bytes(b"keep")
    with pytest.raises(ExportError, match="already exists"):
        export_gguf(_request(small_vocab_model_dir, out))
    assert out.read_bytes() == b"keep"
    export_gguf(_request(small_vocab_model_dir, out, overwrite=True))
    assert out.read_bytes()[:4] == b"GGUF"


def test_k_quants_need_llama_quantize_on_the_path(small_vocab_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert gguf_export.available_quants() == ["f16", "bf16", "q8_0", "q4_0"]
    with pytest.raises(ExportError, match="llama-quantize"):
        export_gguf(_request(small_vocab_model_dir, tmp_path / "k.gguf", "q4_k_m"))

    # A stand-in for llama.cpp's quantiser (not installed here): it records its arguments and copies
    # the f16 file, which is enough to show the f16 file is handed over and removed afterwards.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "llama-quantize"
    program.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\ncp "$1" "$2"\n')
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert "q4_k_m" in gguf_export.available_quants()
    report = export_gguf(_request(small_vocab_model_dir, tmp_path / "out" / "k.gguf", "q4_k_m"))
    args = (bin_dir / "args").read_text().split()
    assert args[2] == "Q4_K_M" and args[1].endswith(".k.gguf.partial")
    assert report.written.path.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["k.gguf"]


def test_ollama_modelfile_carries_template_stops_and_system(small_vocab_model_dir, tmp_path):
    out = tmp_path / "m" / "model.gguf"
    report = export_gguf(
        _request(
            small_vocab_model_dir,
            out,
            "q8_0",
            ollama_dir=out.parent,
            project_name="Tickets",
            system_prompt="Route the ticket to one team.",
        )
    )
    text = (out.parent / "Modelfile").read_text()
    assert "FROM ./model.gguf" in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert 'SYSTEM """Route the ticket to one team."""' in text
    # SmolLM2's template adds a default system prompt that Ollama's stock ChatML lacks, so it is written out
    assert "TEMPLATE" in text and "You are a helpful AI assistant named SmolLM" in text
    name = report.modelfile.name
    assert name.startswith("tickets-") and name.endswith("-q8_0")
    assert report.modelfile.command == ["ollama", "create", name, "-f", str(out.parent / "Modelfile")]


def test_ollama_template_is_left_to_ollama_when_its_own_matches():
    from ftstudio.engine import ollama

    def chatml(msgs):
        return (
            "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
            + "<|im_start|>assistant\n"
        )

    family = ollama.recognise(chatml)
    assert family is not None and family.stock and family.name == "ChatML"

    def odd(msgs):
        return "".join(f"### {m['role']}: {m['content']}\n" for m in msgs)

    assert ollama.recognise(odd) is None


def test_the_request_for_a_run_reads_the_project(project, small_vocab_model_dir, lora_adapter, tmp_path):
    from ftstudio.engine.models import load_tokenizer

    for k in range(4):
        project.add_example(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"q{k}"},
                {"role": "assistant", "content": f"a{k}"},
            ],
            split="eval" if k == 3 else "train",
        )
    run_id = project.create_run({"model": str(small_vocab_model_dir), "method": "lora", "max_length": 128})
    adapter = lora_adapter(small_vocab_model_dir, project.run_dir(run_id) / "adapter", seed=1)
    load_tokenizer(small_vocab_model_dir).save_pretrained(adapter)
    request = gguf_export.request_for_run(project, run_id, tmp_path / "x.gguf", "q8_0")
    assert request.adapter_dir == adapter and request.run_id == run_id and request.train_context_length == 128
    assert request.system_prompt == "Be brief." and request.prompts_kind == "held-out"
    assert [m["content"] for m in request.prompts[0]] == ["Be brief.", "q3", "a3"]
    base = gguf_export.request_for_run(project, "base", tmp_path / "b.gguf")
    assert base.adapter_dir is None and base.model_spec == str(small_vocab_model_dir) and base.run_id is None
    with pytest.raises(ExportError, match="No run 'nope'"):
        gguf_export.request_for_run(project, "nope", tmp_path / "n.gguf")
    assert json.loads(json.dumps(request.prompts))  # plain data: it can cross to a worker thread


def test_the_command_line_exports_a_run_and_refuses_in_words(
    project, small_vocab_model_dir, lora_adapter, tmp_path, capsys, monkeypatch
):
    from ftstudio.cli import main
    from ftstudio.engine.models import load_tokenizer

    project.add_example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    run_id = project.create_run({"model": str(small_vocab_model_dir), "method": "lora", "max_length": 64})
    load_tokenizer(small_vocab_model_dir).save_pretrained(
        lora_adapter(small_vocab_model_dir, project.run_dir(run_id) / "adapter", seed=6)
    )
    out = tmp_path / "cli.gguf"
    code = main(
        [
            "export",
            str(project.path),
            "--run",
            run_id,
            "--gguf",
            str(out),
            "--quant",
            "q8_0",
            "--no-check",
            "--ollama",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and (tmp_path / "Modelfile").is_file()
    assert f"Wrote {out} (q8_0" in printed and "ollama create" in printed and "turned off" in printed

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert (
        main(
            [
                "export",
                str(project.path),
                "--run",
                run_id,
                "--gguf",
                str(tmp_path / "k.gguf"),
                "--quant",
                "q4_k_m",
            ]
        )
        == 1
    )
    assert "llama-quantize" in capsys.readouterr().err and not (tmp_path / "k.gguf").exists()
    assert main(["export", str(project.path), "--run", "nope", "--gguf", str(tmp_path / "n.gguf")]) == 1
    assert "No run 'nope'" in capsys.readouterr().err
