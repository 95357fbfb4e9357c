"""The ``ftstudio`` command.

With no command it opens the desktop app. The sub-commands run the same core
and engine headless, so everything the app does can be scripted:

    ftstudio new DIR
    ftstudio import DIR FILE [--format F] [--map FIELD=COLUMN ...] [--system TEXT] [--eval-fraction F]
    ftstudio validate DIR [--model M] [--max-length N] [--json]
    ftstudio train DIR [--config RUN.yaml] [--preset NAME] [--set key=value ...] [--resume RUN_ID]
    ftstudio train --demo [DIR]
    ftstudio evaluate DIR --run RUN_ID|base [--few-shot K] [--json]
    ftstudio export DIR --dataset OUT.jsonl | --run RUN_ID (--adapter OUT | --merged OUT)
    ftstudio export DIR --run RUN_ID|base --gguf OUT.gguf [--quant Q] [--ollama DIR] [--no-check]
    ftstudio runs DIR
    ftstudio restore DIR [BACKUP | --list]
    ftstudio download HUB_ID
    ftstudio estimate [DIR] [--model ID|PATH] [--preset NAME] [--set key=value ...] [--device-memory GB] [--json]
    ftstudio doctor [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio import __version__
from ftstudio.core.fileio import display_path

if TYPE_CHECKING:
    from ftstudio.core.events import Event
    from ftstudio.core.project import Project, Run
    from ftstudio.core.validation import TokenCounter

BUNDLED_MODEL = "bundled:SmolLM2-135M-Instruct"
METHOD_NAMES = {"lora": "LoRA", "qlora": "QLoRA"}


class CommandError(Exception):
    """An expected failure: printed as one clear message, exit code 1, no traceback."""


def _open_project(path: str) -> Project:
    from ftstudio.core.project import Project, ProjectError

    try:
        return Project.open(path)
    except ProjectError as exc:
        raise CommandError(str(exc)) from None


# -- new / import / validate / export dataset -----------------------------------------

def cmd_new(args: argparse.Namespace) -> int:
    from ftstudio.core.project import Project, ProjectError

    try:
        project = Project.create(args.dir)
    except ProjectError as exc:
        raise CommandError(str(exc)) from None
    print(f"Created project {project.path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ftstudio.core.formats import ImportFailed, import_dataset, parse_column_map
    from ftstudio.core.project import ProjectError

    project = _open_project(args.dir)
    try:
        column_map = parse_column_map(args.map or [])
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.system is not None and not _is_text(args.system):
        raise CommandError("--system holds bytes that are not UTF-8 text; write the system prompt again "
                           "(or put it in the file)")
    from ftstudio.core import preferences

    if args.format == "auto" and preferences.detect_form(args.file):
        try:
            found = preferences.import_preferences(project, args.file)
        except ImportFailed as exc:
            raise CommandError(f"Nothing was imported.\n{exc}") from None
        c = preferences.counts(project)
        print(f"Found: {found.description}")
        print(f"Imported {len(found.pairs)} into the preference data of {project.path} ({c.total_pairs()} pairs and "
              f"{c.total_singles() - 2 * c.total_pairs()} single rated answers in the project, "
              f"{c.pairs['eval']} pairs held out)")
        return 0
    from tqdm import tqdm

    # One bar over both passes (checking every record, then adding them), in bytes of the file.
    bar = tqdm(desc="Reading", unit="B", unit_scale=True, dynamic_ncols=True, leave=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_description("Adding" if done * 2 > total else "Reading", refresh=False)
        bar.refresh()

    try:
        preview = import_dataset(project, args.file, format=args.format, column_map=column_map or None,
                                 system=args.system, eval_fraction=args.eval_fraction, progress=progress)
    except ImportFailed as exc:
        raise CommandError(f"Nothing was imported.\n{exc}") from None
    except ProjectError as exc:
        raise CommandError(f"Nothing was imported.\n{exc}") from None
    except sqlite3.Error as exc:  # the write itself failed (a full disk, a read-only folder)
        raise CommandError(f"Nothing was imported: the project's database in {project.path} could not be "
                           f"written ({exc}). Free some disk space or check that the folder can be written, "
                           "then import again.") from None
    finally:
        bar.close()
    counts = project.label_counts()
    n_eval = sum(c["eval"] for c in counts.values())
    print(f"Found: {preview.description}")
    print(f"Imported {preview.example_count} examples into {display_path(project.path)} "
          f"({project.count_examples()} in the project, {n_eval} held out for evaluation)")
    return 0


def _is_text(value: str) -> bool:
    """Whether a command-line value is real text (bytes that are not UTF-8 arrive as lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _eval_fraction(text: str) -> float:
    from ftstudio.core.project import check_eval_fraction

    try:
        return check_eval_fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _token_counter(model_spec: str) -> TokenCounter:
    from ftstudio.engine.models import load_tokenizer, resolve_model
    from ftstudio.engine.tokenize import token_count

    # A folder may hold only a tokenizer and its chat template: that is all the checks need.
    folder = Path(model_spec).expanduser()
    tokenizer = load_tokenizer(folder if folder.is_dir() and not (folder / "config.json").exists()
                               else resolve_model(model_spec))
    return lambda conv: token_count(tokenizer, conv)


def cmd_validate(args: argparse.Namespace) -> int:
    from ftstudio.core.validation import validate_project

    project = _open_project(args.dir)
    count = None
    # The model's tokenizer counts the tokens and shows where its chat template
    # ends each answer; loading it takes seconds, so only when a model or a
    # context size is given.
    if args.max_length or args.model:
        from ftstudio.engine.models import ModelError

        try:
            count = _token_counter(args.model or BUNDLED_MODEL)
        except ModelError as exc:
            raise CommandError(str(exc)) from None
    report = validate_project(project, count_tokens=count, max_length=args.max_length)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
        if count is None:
            print("\nToken lengths and the chat template's end-of-turn tokens were not checked: give --model "
                  "(and --max-length) to check them.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    project = _open_project(args.dir)
    if args.preferences:
        from ftstudio.core.preferences import export_preferences

        n = export_preferences(project, args.preferences, unpaired=args.unpaired, split=args.split)
        what = "rated answers (TRL's unpaired form)" if args.unpaired else "preference pairs (TRL's form)"
        print(f"Wrote {n} {what} to {args.preferences}")
        return 0
    if args.dataset:
        from ftstudio.core.formats import export_dataset

        from ftstudio.core.fileio import DiskFullError

        try:
            n = export_dataset(project, args.dataset, split=args.split)
        except DiskFullError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"Cannot write {display_path(args.dataset)}: {exc.strerror or exc}") from None
        print(f"Wrote {n} examples to {args.dataset}")
        return 0
    if args.gguf:
        if not args.run:
            raise CommandError("Say which run to export as GGUF: --run RUN_ID, or --run base for the base model")
        return _export_gguf(project, args)
    if not args.run or not (args.adapter or args.merged):
        raise CommandError("Say what to export: --dataset OUT.jsonl, --preferences OUT.jsonl, or --run RUN_ID with "
                           "--adapter OUT, --merged OUT or --gguf OUT.gguf")
    if args.run == "base":
        raise CommandError("--run base exports only as GGUF (--gguf OUT.gguf)")
    run = _get_run(project, args.run)
    adapter = project.run_dir(run.id) / "adapter"
    if not adapter.exists():
        raise CommandError(f"Run {run.id} has no adapter yet ({adapter}); finish or resume it first")
    from ftstudio.engine import export

    try:
        if args.adapter:
            out = export.export_adapter(adapter, args.adapter)
            print(f"Wrote the adapter of run {run.id} to {out}")
        if args.merged:
            out = export.export_merged(run.config.get("model", ""), adapter, args.merged)
            print(f"Wrote the merged model of run {run.id} to {out}")
    except export.ExportError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _export_gguf(project: Project, args: argparse.Namespace) -> int:
    from ftstudio.engine import gguf_export
    from ftstudio.engine.export import ExportError

    if args.run != "base":
        _get_run(project, args.run)  # a clear message naming the recent runs
    try:
        request = gguf_export.request_for_run(project, args.run, args.gguf, args.quant, parity=not args.no_check,
                                              prompts=args.check_prompts, ollama_dir=args.ollama)
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    from tqdm import tqdm

    bar = tqdm(total=1000, unit="", bar_format="{l_bar}{bar}| {desc}", dynamic_ncols=True)
    stop = {"asked": False}

    def on_progress(fraction: float, message: str) -> None:
        bar.n = int(1000 * fraction)
        bar.set_description_str(message[:60], refresh=False)
        bar.refresh()

    def on_interrupt(signum: int, frame: object) -> None:
        stop["asked"] = True
        print("\nStopping (the partial file is removed)...", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        report = gguf_export.export_gguf(request, on_progress, lambda: stop["asked"])
    except gguf_export.ExportStopped as exc:
        raise CommandError(str(exc)) from None
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    print("\n".join(report.lines()))
    if report.modelfile is not None and args.ollama_create:
        from ftstudio.engine.ollama import run_create

        ok, output = run_create(report.modelfile)
        print(output)
        if not ok:
            raise CommandError(f"ollama create did not succeed; the Modelfile is at {report.modelfile.path}")
    elif report.modelfile is not None:
        from ftstudio.engine.ollama import ollama_program

        if ollama_program():
            print("ollama is installed: add --ollama-create to run that line now.")
    return 0 if report.passed in (True, None) else 2


def _get_run(project: Project, run_id: str) -> Run:
    try:
        return project.get_run(run_id)
    except KeyError:
        known = ", ".join(r.id for r in project.runs()[:5]) or "none yet"
        raise CommandError(f"No run '{run_id}' in {project.path} (recent runs: {known})") from None


def cmd_runs(args: argparse.Namespace) -> int:
    project = _open_project(args.dir)
    runs = project.runs()
    if not runs:
        print("No runs yet. Start one with: ftstudio train", args.dir)
    for r in runs:
        tl = "-" if r.train_loss is None else f"{r.train_loss:.4f}"
        el = "-" if r.eval_loss is None else f"{r.eval_loss:.4f}"
        print(f"{r.id}  {r.status:11s} {r.method:5s} steps {r.steps:5d}  train {tl}  eval {el}  {r.model}")
    if any(r.status == "interrupted" for r in runs):
        print(f"Interrupted runs continue with: ftstudio train {args.dir} --resume RUN_ID")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """List the project's automatic backups, or put one back in place of project.db."""
    from ftstudio.core.project import DamagedProject, Project, ProjectError, list_backups, restore_damaged

    folder = Path(args.dir)
    backups = list_backups(folder)
    if args.list or not backups:
        if not backups:
            print(f"No backups in {display_path(folder)} yet (the app takes one every 15 minutes while it changes)")
        for b in backups:
            print(f"{b.name}  {b.stat().st_size / 1e6:8.1f} MB")
        return 0 if backups or args.list else 1
    chosen = Path(args.backup) if args.backup else backups[0]
    if args.backup and not chosen.exists():
        chosen = folder / "backups" / args.backup
    try:
        try:
            project = Project.open(folder)
        except DamagedProject:
            aside = restore_damaged(folder, chosen)
            print(f"Restored {chosen.name}; the damaged database is kept as {aside.name}")
            return 0
        project.restore(chosen)
    except ProjectError as exc:
        raise CommandError(str(exc)) from None
    print(f"Restored {chosen.name} into {display_path(project.db_path)} (the state before it is kept as a backup)")
    return 0


# -- train ------------------------------------------------------------------------------

class TerminalReporter:
    """Shows engine events in the terminal: a progress bar and a line per logged step."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: Any = None  # a tqdm bar once the first Progress event comes

    def __call__(self, event: Event) -> None:
        from ftstudio.core import events as ev

        if isinstance(event, ev.Progress):
            if self._bar is None:
                self._bar = self._tqdm(total=event.total_steps, unit="step", dynamic_ncols=True)
            self._bar.n = event.step
            self._bar.refresh()
        elif isinstance(event, ev.StepMetrics):
            self._write(f"step {event.step:5d}  loss {event.loss:.4f}  lr {event.lr:.2e}  "
                        f"grad {event.grad_norm:.3f}  {event.tokens_per_s:,.0f} tok/s"
                        + (f"  vram {event.vram_allocated / 2**30:.2f} GiB" if event.vram_total else ""))
        elif isinstance(event, ev.EvalMetrics):
            self._write(f"step {event.step:5d}  held-out loss {event.eval_loss:.4f}")
        elif isinstance(event, ev.PreferenceMetrics) and event.split == "eval":
            margin = f"  margin {event.reward_margin:+.3f}" if event.reward_margin is not None else ""
            self._write(f"step {event.step:5d}  held-out reward accuracy {event.reward_accuracy:.2f}{margin}")
        elif isinstance(event, ev.Sample):
            self._write(f"  sample: {event.prompt[:60]!r} -> {event.output[:60]!r}"
                        + (f" (reference {event.reference[:40]!r})" if event.reference else ""))
        elif isinstance(event, ev.Checkpoint):
            self._write(f"  checkpoint at step {event.step}: {event.path}")
        elif isinstance(event, ev.Log):
            self._write(("warning: " if event.level == "warning" else "") + event.message)
        elif isinstance(event, ev.Failed):
            self._write(f"Training stopped: {event.message}"
                        + (f"\nWhat to do: {event.suggestion}" if event.suggestion else "")
                        + (f"\nKept checkpoint: {event.last_checkpoint}" if event.last_checkpoint else ""))
        elif isinstance(event, ev.Finished):
            self.close()

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def cmd_estimate(args: argparse.Namespace) -> int:
    """The auto-fit plan and memory estimate of a configuration, on this device or a card you name."""
    from dataclasses import replace as _replace

    from ftstudio.core.config import ConfigError, TrainConfig, preset, validate
    from ftstudio.engine.estimate import (
        GIB, DeviceBudget, ModelShapeError, cpu_budget, fetch_model_config, gb, model_shape,
    )
    from ftstudio.engine.fit import plan_run

    try:
        cfg = TrainConfig.load(Path(args.config)) if args.config else preset(args.preset)
        cfg = cfg.with_overrides(args.set or [])
        if args.model:
            cfg = _replace(cfg, model=args.model)
    except ConfigError as exc:
        raise CommandError("The configuration has problems:\n" + "\n".join(f"  {p}" for p in exc.problems)) from None
    except FileNotFoundError as exc:
        raise CommandError(f"{exc.filename}: no such file") from None
    problems = validate(cfg)
    if problems:
        raise CommandError("The configuration has problems:\n" + "\n".join(f"  {p}" for p in problems))
    try:
        shape = fetch_model_config(cfg.model) if args.fetch_config else model_shape(cfg.model)
    except ModelShapeError as exc:
        hint = "" if args.fetch_config else " (or run again with --fetch-config)"
        raise CommandError(f"{exc}{hint}") from None
    if args.device_memory is not None:
        if not args.device_memory > 0:
            raise CommandError(f"--device-memory must be a number of GB above 0, not {args.device_memory}")
        memory = int(args.device_memory * GIB)
        device = DeviceBudget("cuda", f"a {args.device_memory:g} GB GPU", memory, memory, 1, True)
    elif cfg.device == "cpu":
        device = cpu_budget()
    else:
        from ftstudio.engine.device import cuda_available, device_info

        device = DeviceBudget.from_info(device_info()) if cuda_available() else cpu_budget()
    time = None
    n_train = 0
    ceiling = None
    if args.dir:
        # The project's data and its runs' measured speed give the time; an earlier run that
        # ran out of memory caps the micro-batch, as it caps the project's next run.
        from ftstudio.core.runs import micro_batch_ceiling
        from ftstudio.core.run_speeds import speed_history
        from ftstudio.engine.estimate import CHARS_PER_TOKEN, estimate_time, measured_speeds

        with _open_project(args.dir) as project:
            n_train, chars = project.trainable_sizes().get("train", (0, 0))
            history = measured_speeds(speed_history(project))
            ceiling = micro_batch_ceiling(project, cfg)
    plan = plan_run(cfg, shape, device, micro_batch_ceiling=ceiling)
    if args.dir and n_train:
        planned = plan.applied_to(cfg)
        time = estimate_time(planned, shape, int(chars / CHARS_PER_TOKEN), device, n_train,
                             plan.micro_batch_tokens, history)
    if args.json:
        out = plan.to_dict()
        if time is not None:
            out["time"] = {"seconds": round(time.seconds), "steps": time.steps,
                           "tokens_per_s": round(time.tokens_per_s, 1), "basis": time.basis, "text": time.text}
        out["model"] = {"spec": cfg.model, "source": shape.source, "params": shape.total_params,
                        "download_bytes": shape.download_bytes or None}
        print(json.dumps(out, indent=2))
        return 0 if plan.fits else 2
    where = {"table": "shape from FT Studio's table of popular models", "config": "shape from its config.json",
             "cache": "downloaded", "folder": "local folder", "bundled": "bundled"}.get(shape.source, shape.source)
    size = f"{shape.total_params / 1e9:.2f}B weights"
    download = f", download about {shape.download_bytes / 1e9:,.1f} GB" if shape.download_bytes and \
        shape.source in ("table", "config") else ""
    print(f"Model:  {shape.name or cfg.model} ({size}, {where}{download})")
    print(f"Device: {device.name}, {gb(device.available)} GB {device.memory_name}")
    print(f"Run:    {METHOD_NAMES.get(cfg.method, cfg.method)}, rank {cfg.lora_rank}, context {cfg.max_length:,} tokens, "
          f"{cfg.batch_tokens * cfg.grad_accum:,} tokens per optimiser step")
    print(f"Plan:   {plan.text}")
    est = plan.estimate
    print("Memory: " + ", ".join(f"{name.lower()} {gb(value)} GB" for name, value in est.parts())
          + f" (total {gb(est.total)} GB)")
    if time is not None:
        print(f"Time:   {time.text} for {n_train:,} training examples")
    elif args.dir:
        print(f"Time:   {display_path(Path(args.dir))} has no training examples yet")
    for note in plan.notes:
        print(f"Note:   {note}")
    if plan.suggestion is not None:
        changes = " ".join(f"--set {k}={v}" for k, v in plan.suggestion.changes.items())
        print(f"Try:    {changes}  ({plan.suggestion.plan.text})")
    return 0 if plan.fits else 2


def cmd_train(args: argparse.Namespace) -> int:
    from ftstudio.core import runs
    from ftstudio.core.config import ConfigError, TrainConfig, preset
    from ftstudio.core.demo import ensure_demo_project
    from ftstudio.core.project import ProjectError, check_run_id

    if args.demo:
        project = ensure_demo_project(Path(args.dir) if args.dir else None)
        print(f"Demo project: {project.path} ({project.count_examples()} support tickets, 5 categories)")
    else:
        if not args.dir:
            raise CommandError("Say which project to train: ftstudio train DIR (or ftstudio train --demo)")
        project = _open_project(args.dir)

    main_process = _rank() == 0
    try:
        if args.resume:
            plan = runs.plan_resume(project, _get_run(project, args.resume).id)
        else:
            cfg = (TrainConfig.load(Path(args.config)) if args.config
                   else preset(args.preset, train_examples=len(project.prepared_data().train)))
            cfg = cfg.with_overrides(args.set or [])
            if args.from_run:
                from ftstudio.core.preferences import starting_adapter

                try:
                    cfg.start_from = starting_adapter(project, args.from_run)
                except ValueError as exc:
                    raise CommandError(f"--from-run: {exc}") from None
            if _world() > 1 and not args.run_id:
                raise CommandError("When launching on several processes, give every process the same "
                                   "--run-id NAME")
            plan = runs.plan_new(project, cfg, run_id=check_run_id(args.run_id) if args.run_id else None)
    except (ConfigError, runs.RunProblem) as exc:
        if isinstance(exc, ConfigError) or exc.kind == "config":
            raise CommandError("The configuration has problems:\n" + "\n".join(f"  {p}" for p in exc.problems)) \
                from None
        if exc.kind == "no_data" and exc.objective != "sft":
            raise CommandError(f"{project.path} has no preference data for training yet: rate answers blind on the "
                               f"Compare page, or import pairs with 'ftstudio import {project.path} PAIRS.jsonl'") \
                from None
        if exc.kind == "no_data":
            raise CommandError(f"{project.path} has no training examples with answers yet; import some with "
                               f"'ftstudio import {project.path} FILE'") from None
        raise CommandError(str(exc)) from None
    except FileNotFoundError as exc:
        raise CommandError(f"{exc.filename}: no such file") from None
    except ProjectError as exc:
        raise CommandError(str(exc)) from None
    cfg, data = plan.config, plan.data
    try:
        run_id = runs.begin(project, plan, record=main_process)
    except (runs.RunProblem, ProjectError) as exc:
        raise CommandError(str(exc)) from None
    run_dir = project.run_dir(run_id)
    if main_process:
        what = "examples" if cfg.objective == "sft" else "preference rows"
        method = cfg.method.upper() if cfg.objective == "sft" else f"{cfg.objective.upper()} ({cfg.method.upper()})"
        start = f" from {cfg.start_from}" if cfg.start_from else ""
        print(f"Run {run_id}: {method} on {cfg.model}{start}, {len(data.train)} training and "
              f"{len(data.eval)} held-out {what}")

    stop_requested = {"flag": False}

    def on_interrupt(signum: int, frame: object) -> None:
        if stop_requested["flag"]:
            raise KeyboardInterrupt
        stop_requested["flag"] = True
        print("\nStopping after this step and saving a checkpoint (Ctrl+C again to quit at once)…",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    reporter = TerminalReporter() if main_process else None
    from ftstudio.engine.training import train

    try:
        result = train(cfg, data, reporter if reporter is not None else (lambda event: None),
                       lambda: stop_requested["flag"], run_dir=run_dir, resume=plan.resume,
                       micro_batch_ceiling=plan.micro_batch_ceiling)
    finally:
        signal.signal(signal.SIGINT, previous)
        if reporter is not None:
            reporter.close()
    if main_process:
        runs.record_outcome(project, run_id, result)
        print(f"Run id: {run_id}")
        if result.adapter_dir:
            print(f"Adapter: {result.adapter_dir}")
        if result.status == "stopped":
            print(f"Stopped at step {result.steps}; continue with: ftstudio train {project.path} --resume {run_id}")
    return 0 if result.status in ("finished", "stopped") else 1


# -- evaluate ---------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    from ftstudio.core import ratings
    from ftstudio.core.config import BUNDLED_MODEL
    from ftstudio.core.prompting import choose_shots, label_set_for
    from ftstudio.core.scores import model_rows, results_text
    from ftstudio.engine.evaluation import PromptTooLong, evaluate
    from ftstudio.engine.inference import Generator, loads_in_4bit
    from ftstudio.engine.models import ModelError

    project = _open_project(args.dir)
    data = project.prepared_data()
    if not data.eval:
        raise CommandError(f"{project.path} has no held-out examples to evaluate on")
    run_id = None if args.run == "base" else args.run
    if run_id and args.few_shot:
        raise CommandError("--few-shot is a prompting baseline of the base model: use it with --run base")
    if args.few_shot < 0:
        raise CommandError("--few-shot takes a number of examples, 0 or more")
    model_spec = args.model or BUNDLED_MODEL
    max_length = args.max_length or 512
    adapter = None
    four_bit = False
    if run_id:
        run = _get_run(project, run_id)
        four_bit = loads_in_4bit([run.config])  # a QLoRA run answers from the 4-bit base it trained on
        model_spec = args.model or run.config.get("model", BUNDLED_MODEL)
        # The run's own context size, so the loss here is the held-out loss the run reported.
        max_length = args.max_length or int(run.config.get("max_length", 512))
        adapter = project.run_dir(run.id) / "adapter"
        if not adapter.exists():
            raise CommandError(f"Run {run.id} has no adapter yet; finish or resume it first")
    references = [str(c[-1].get("content") or "") for c in data.eval if c and c[-1].get("role") == "assistant"]
    shots = choose_shots(data.train, args.few_shot, seed=args.seed, example_ids=data.train_ids)
    if args.few_shot and not shots:
        raise CommandError(f"{project.path} has no single-turn training examples to put in a few-shot prompt")
    try:
        generator = Generator(model_spec, four_bit=four_bit)
        if run_id is not None and adapter is not None:
            generator.add_adapter(run_id, adapter)
    except ModelError as exc:
        raise CommandError(str(exc)) from None
    try:
        result = evaluate(generator, data.eval, example_ids=data.eval_ids, model=run_id, max_length=max_length,
                          shots=shots, labels=label_set_for(project, references))
    except PromptTooLong as exc:
        raise CommandError(f"{exc} (--few-shot, --max-length)") from None
    payload = result.to_dict()
    payload["run"] = run_id or "base"
    payload["model"] = model_spec
    ratings.store_evaluation(project, run_id, model_spec, payload)
    if args.json:
        if not args.predictions:
            payload.pop("predictions", None)
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        print(results_text(model_rows(ratings.evaluations(project))))
    return 0


# -- download ---------------------------------------------------------------------------

def cmd_download(args: argparse.Namespace) -> int:
    from ftstudio.engine.models import ModelError, download_model

    print(f"Downloading {args.model} into the Hugging Face cache...")
    try:
        folder = download_model(args.model)
    except ModelError as exc:
        raise CommandError(str(exc)) from None
    print(f"Model ready: {folder}\nTrain with it: ftstudio train DIR --set model={args.model}")
    return 0


# -- doctor -----------------------------------------------------------------------------

def cmd_doctor(args: argparse.Namespace) -> int:
    from ftstudio.engine.doctor import run_checks

    report = run_checks()
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else report.text())
    return 1 if report.blocking else 0


# -- GUI --------------------------------------------------------------------------------

def qt_precheck() -> str:
    """Why the window could not open here, in words with the install line; "" when it can.

    Run before Qt starts, so the user reads this instead of Qt's "Could not load the
    Qt platform plugin" and an abort."""
    from ftstudio.core.qt_platform import check_platform

    result = check_platform()
    if not result.ok:
        return result.message() + "\n(The headless commands, such as 'ftstudio train', work without a window.)"
    if result.platform == "xcb" and not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        return ("No display to open the window on (DISPLAY is not set). Start FT Studio from the desktop, "
                "or use the headless commands (ftstudio --help).")
    return ""


def cmd_gui(args: argparse.Namespace) -> int:
    problem = qt_precheck()
    if problem:
        raise CommandError(problem)
    from ftstudio.core.demo import ensure_demo_project
    from ftstudio.gui.app import run_app

    path = None
    if args.demo:
        path = str(ensure_demo_project().path)
    elif args.project:
        path = args.project
    return run_app(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftstudio", description="FT Studio: fine-tune language models with LoRA "
                                     "and QLoRA on your own workstation. With no command, opens the app.")
    parser.add_argument("--version", action="version", version=f"ftstudio {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("open", help="open the app (on a project, or on the demo project with --demo)")
    p.add_argument("project", nargs="?")
    p.add_argument("--demo", action="store_true", help="open the demo project (created on first use)")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("new", help="create a project folder")
    p.add_argument("dir")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("import", help="import examples (or preference pairs, found by their fields) from a file "
                                      "into a project")
    p.add_argument("dir")
    p.add_argument("file")
    p.add_argument("--format", default="auto",
                   choices=["auto", "messages", "alpaca", "sharegpt", "csv", "parquet", "hf-dataset"])
    p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help="for CSV/TSV/Parquet: which column becomes prompt, response, system or label")
    p.add_argument("--system", help="system prompt for every imported example that has none")
    p.add_argument("--eval-fraction", type=_eval_fraction, default=None,
                   help="share of new examples held out for evaluation (default 0.1)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("download", help="download a model from the Hugging Face hub into the local cache")
    p.add_argument("model", help="hub id, e.g. HuggingFaceTB/SmolLM2-360M-Instruct")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("doctor", help="check this machine: PyTorch and the GPU, bitsandbytes, memory, disk, "
                       "the bundled model, Qt (exits 1 on a problem that blocks training)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("validate", help="report problems in a project's examples")
    p.add_argument("dir")
    p.add_argument("--max-length", type=int, default=None, help="context size in tokens to check lengths against")
    p.add_argument("--model", default=None,
                   help="whose tokenizer counts the tokens and whose chat template is checked for end-of-turn "
                        f"tokens (default with --max-length: {BUNDLED_MODEL})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("estimate", help="the memory a run needs and how it will fit this device (or a card you "
                                        "name), before anything is downloaded or loaded")
    p.add_argument("dir", nargs="?", help="a project: adds how long it takes on its data, at the speed its "
                                          "earlier runs measured")
    p.add_argument("--model", help=f"a hub id, a local folder or {BUNDLED_MODEL} (default: the configuration's)")
    p.add_argument("--config", help="a run's config.yaml")
    p.add_argument("--preset", default="balanced", choices=["quick", "balanced", "best"])
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting")
    p.add_argument("--device-memory", type=float, metavar="GB",
                   help="plan for a GPU with this much memory instead of this machine's device")
    p.add_argument("--fetch-config", action="store_true",
                   help="fetch the model's config.json (a few KB) from the hub first, for a model not in the table")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("train", help="fine-tune on a project (Quick preset on the bundled model by default)")
    p.add_argument("dir", nargs="?")
    p.add_argument("--demo", action="store_true", help="create the demo project (if needed) and train on it")
    p.add_argument("--config", help="a run's config.yaml")
    p.add_argument("--preset", default="quick", choices=["quick", "balanced", "best"])
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a stopped run from its last checkpoint")
    p.add_argument("--run-id", help="name the run (needed when launching on several processes)")
    p.add_argument("--from-run", metavar="RUN_ID",
                   help="start from this run's adapter (preference tuning usually starts from an SFT run)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="held-out loss and exact-match accuracy of a run (or the base model)")
    p.add_argument("dir")
    p.add_argument("--run", required=True, help="a run id, or 'base'")
    p.add_argument("--model", help="base model (default: the run's, or the bundled model)")
    p.add_argument("--max-length", type=int, default=None,
                   help="context size in tokens (default: the run's max_length, 512 for the base model)")
    p.add_argument("--few-shot", type=int, default=0, metavar="K",
                   help="with --run base: put K training examples in the prompt (balanced across labels)")
    p.add_argument("--seed", type=int, default=0, help="which training examples a few-shot prompt takes")
    p.add_argument("--json", action="store_true", help="print this evaluation as JSON instead of the results table")
    p.add_argument("--predictions", action="store_true", help="with --json: include every prediction")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export the dataset, a run's adapter, or a merged model")
    p.add_argument("dir")
    p.add_argument("--dataset", metavar="OUT.jsonl")
    p.add_argument("--preferences", metavar="OUT.jsonl", help="the preference pairs, in TRL's form")
    p.add_argument("--unpaired", action="store_true",
                   help="with --preferences: every rated answer in TRL's unpaired (KTO) form")
    p.add_argument("--split", choices=["train", "eval"], help="only this split of the dataset (or the pairs)")
    p.add_argument("--run", metavar="RUN_ID")
    p.add_argument("--adapter", metavar="OUT")
    p.add_argument("--merged", metavar="OUT")
    p.add_argument("--gguf", metavar="OUT.gguf", help="one GGUF file for llama.cpp, Ollama and LM Studio "
                   "(with --run RUN_ID, or --run base for the base model)")
    p.add_argument("--quant", default="f16", metavar="Q",
                   help="f16 (default), bf16, q8_0 or q4_0; K-quants (q4_k_m, q5_k_m, q6_k, ...) when llama.cpp's "
                        "llama-quantize is on the PATH")
    p.add_argument("--ollama", metavar="DIR", help="also write an Ollama Modelfile into DIR")
    p.add_argument("--ollama-create", action="store_true", help="run 'ollama create' on the Modelfile afterwards")
    p.add_argument("--no-check", action="store_true",
                   help="skip the parity check (reading the file back and asking it the held-out prompts)")
    p.add_argument("--check-prompts", type=int, default=8, metavar="N",
                   help="how many held-out prompts the parity check asks (default 8)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("runs", help="list a project's runs")
    p.add_argument("dir")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("restore", help="list a project's automatic backups, or restore one (the newest by default)")
    p.add_argument("dir")
    p.add_argument("backup", nargs="?", help="a backup's file name (see --list) or path")
    p.add_argument("--list", action="store_true", help="list the backups, newest first")
    p.set_defaults(func=cmd_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if not argv or argv[0] not in commands and not argv[0].startswith("-"):
        # "ftstudio" and "ftstudio PROJECT_DIR" open the app.
        argv = ["open", *argv]
    elif argv and argv[0] == "--demo":
        argv = ["open", *argv]
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"ftstudio: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # what the project says in words; anything else stays a bug report
        from ftstudio.core.fileio import DiskFullError
        from ftstudio.core.project import ProjectError

        if isinstance(exc, (ProjectError, DiskFullError)):
            print(f"ftstudio: {exc}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
