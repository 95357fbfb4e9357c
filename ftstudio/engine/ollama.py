"""An Ollama ``Modelfile`` for an exported GGUF.

Ollama does not run the Jinja chat template stored in a GGUF: on
``ollama create`` it picks the closest of its own Go templates. That guess is
right for a plain ChatML or Llama 3 template and wrong for one with a twist
(SmolLM2 and Qwen2.5 insert a default system prompt when a conversation has
none), which is the commonest reason a model answers differently in Ollama.
So the Modelfile carries:

- ``FROM`` the GGUF file;
- ``PARAMETER stop`` for each token that ends the model's turn;
- ``SYSTEM`` with the project's system prompt, when its examples share one;
- ``TEMPLATE`` in Go template syntax when Ollama's own reading would differ,
  written only after rendering sample conversations both ways and finding
  them identical.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello there"}],
    [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three"},
    ],
    [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three"},
    ],
]


@dataclass(frozen=True)
class TemplateFamily:
    name: str
    go_template: str  # for the Modelfile's TEMPLATE
    render: Callable[[list[dict[str, str]]], str]  # what that Go template renders, for the probes
    stock: bool  # Ollama's own template for this family renders the same: no TEMPLATE needed


def _chatml(default_system: str | None) -> TemplateFamily:
    def render(messages: list[dict[str, str]]) -> str:
        out = ""
        if default_system is not None and (not messages or messages[0]["role"] != "system"):
            out += f"<|im_start|>system\n{default_system}<|im_end|>\n"
        for m in messages:
            out += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
        return out + "<|im_start|>assistant\n"

    head = ""
    if default_system is not None:
        head = (
            '{{- if or (not .Messages) (ne (index .Messages 0).Role "system") }}<|im_start|>system\n'
            f"{default_system}<|im_end|>\n{{{{ end }}}}"
        )
    go = head + (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n"
    )
    return TemplateFamily(
        "ChatML" + (" with a default system prompt" if default_system else ""),
        go,
        render,
        stock=default_system is None,
    )


def _llama3() -> TemplateFamily:
    def render(messages: list[dict[str, str]]) -> str:
        out = "".join(
            f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
            for m in messages
        )
        return out + "<|start_header_id|>assistant<|end_header_id|>\n\n"

    go = (
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n"
        "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    return TemplateFamily("Llama 3", go, render, stock=True)


def _default_chatml_system(render_jinja: Callable[[list[dict[str, str]]], str]) -> str | None:
    text = render_jinja(PROBES[0])
    match = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n<\|im_start\|>user\n", text, re.DOTALL)
    return match.group(1) if match else None


def recognise(
    render_jinja: Callable[[list[dict[str, str]]], str], bos_text: str | None = None
) -> TemplateFamily | None:
    """The family whose Go template renders every probe exactly as the Jinja template does, or None."""

    def jinja(messages: list[dict[str, str]]) -> str:
        text = render_jinja(messages)
        # llama.cpp and Ollama put the BOS token in front themselves.
        return text[len(bos_text) :] if bos_text and text.startswith(bos_text) else text

    try:
        candidates = [_chatml(None), _llama3()]
        default = _default_chatml_system(jinja)
        if default is not None and "{{" not in default and '"""' not in default:
            candidates.insert(0, _chatml(default))
        for family in candidates:
            if all(jinja(p) == family.render(p) for p in PROBES):
                return family
    except Exception:  # a template that cannot render the probes: none recognised
        return None
    return None


def jinja_renderer(tokenizer: Any) -> Callable[[list[dict[str, str]]], str]:
    def render(messages: list[dict[str, str]]) -> str:
        return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    return render


def model_name(*parts: str) -> str:
    """A name Ollama accepts: lower case letters, digits, '-', '_' and '.'."""
    text = "-".join(p for p in parts if p)
    text = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return text[:80] or "ftstudio-model"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Modelfile:
    path: Path
    name: str
    command: list[str]
    template_family: str | None  # None: Ollama picks its own template
    template_written: bool
    notes: list[str]

    @property
    def command_line(self) -> str:
        import shlex

        return shlex.join(self.command)


def write_modelfile(
    folder: Path | str,
    gguf_path: Path,
    name: str,
    tokenizer: Any,
    stop_texts: Sequence[str],
    system_prompt: str | None = None,
) -> Modelfile:
    """Write ``folder/Modelfile`` for ``gguf_path``; returns what was written and the ``ollama create`` line."""
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    gguf_path = Path(gguf_path).resolve()
    source = f"./{gguf_path.name}" if gguf_path.parent == folder.resolve() else str(gguf_path)
    bos = None
    if tokenizer.bos_token_id is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        bos = tokenizer.bos_token  # added by the runtime, so not part of the template's text
    family = recognise(jinja_renderer(tokenizer), bos)
    notes: list[str] = []
    lines = [f"# Written by FT Studio for {gguf_path.name}", f"FROM {source}", ""]
    if family is not None and not family.stock:
        lines += [
            "# Ollama's own reading of the file's chat template would differ, so it is given here.",
            f'TEMPLATE """{family.go_template}"""',
            "",
        ]
        notes.append(
            f"The chat template ({family.name}) is written out, since Ollama's guess from the file "
            "would differ."
        )
    elif family is None:
        notes.append(
            "The chat template is not one FT Studio can write in Ollama's template language; Ollama "
            "will choose its closest template. Check the answers with 'ollama run'."
        )
    if system_prompt:
        if '"""' in system_prompt:
            notes.append('The project\'s system prompt contains """ and is left out of the Modelfile.')
        else:
            lines += [f'SYSTEM """{system_prompt}"""', ""]
    for text in dict.fromkeys(stop_texts):
        lines.append(f"PARAMETER stop {_quoted(text)}")
    path = folder / "Modelfile"
    tmp = folder / ".Modelfile.partial"
    tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    tmp.replace(path)
    return Modelfile(
        path,
        name,
        ["ollama", "create", name, "-f", str(path)],
        family.name if family else None,
        bool(family and not family.stock),
        notes,
    )


def ollama_program() -> str | None:
    return shutil.which("ollama")


def run_create(modelfile: Modelfile, timeout: float = 1800) -> tuple[bool, str]:
    """Run ``ollama create``; (succeeded, what it printed)."""
    program = ollama_program()
    if program is None:
        return False, "ollama is not on the PATH"
    try:
        proc = subprocess.run(
            [program, *modelfile.command[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(modelfile.path.parent),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def shared_system_prompt(conversations: Sequence[Sequence[dict[str, Any]]]) -> str | None:
    """The system prompt every training conversation starts with, if they share one."""
    prompts = set()
    for conv in conversations:
        first = conv[0] if conv else {}
        prompts.add(str(first.get("content") or "") if first.get("role") == "system" else None)
        if len(prompts) > 1:
            return None
    value = next(iter(prompts), None)
    return value or None
