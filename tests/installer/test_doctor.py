"""``ftstudio doctor``: every check on this machine (a CPU build of PyTorch, no GPU), the JSON
form, and a problem that blocks training turning the exit code to 1."""

import json
from pathlib import Path

from qt_libraries import library_set

from ftstudio.cli import main
from ftstudio.core import doctor as d
from ftstudio.engine.doctor import check_torch, run_checks

SMI = Path(__file__).parent / "nvidia-smi"
KEYS = [
    "python",
    "ftstudio",
    "torch",
    "cuda",
    "bitsandbytes",
    "bundled_model",
    "ram",
    "cache",
    "disk",
    "qt",
    "hf_token",
]


def test_doctor_json_reports_the_cpu_build_and_nothing_blocking(bundled_dir, capsys, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["blocking"] == []
    checks = {c["key"]: c for c in report["checks"]}
    assert list(checks) == KEYS
    assert "CPU build" in checks["torch"]["detail"]
    assert checks["cuda"]["status"] == "note"  # no GPU here: CPU training, said as a note
    assert checks["bitsandbytes"]["status"] == "note" and "loads" in checks["bitsandbytes"]["detail"]
    assert checks["bundled_model"]["status"] == "ok" and str(bundled_dir) in checks["bundled_model"]["detail"]
    assert checks["qt"]["status"] == "ok" and "'offscreen'" in checks["qt"]["detail"]
    for c in report["checks"]:
        assert c["status"] in ("ok", "note", "warning")
        assert c["blocks_training"] is False


def test_an_unwritable_cache_blocks_training_and_says_what_to_do(tmp_path, capsys, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    # The cache folder under a plain file can never be created, whoever runs the test (root included).
    monkeypatch.setenv("FTSTUDIO_CACHE_DIR", str(not_a_folder / "cache"))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "Problem  Cache folder" in out and "FTSTUDIO_CACHE_DIR" in out
    assert "block training" in out


def test_missing_qt_libraries_are_a_warning_not_a_block(tmp_path, monkeypatch):
    platforms = library_set(tmp_path, leave_out={"libQt6XcbQpa.so.6"})
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", str(platforms))
    check = d.check_qt()
    assert check.status == d.WARNING and not check.blocks_training
    assert "libQt6XcbQpa.so.6" in check.detail and "PySide6" in check.fix


def test_cpu_build_on_a_machine_whose_gpu_could_train_says_which_build_to_install():
    table = (SMI / "driver-570-rtx4090.txt").read_text()
    [check] = check_torch(nvidia_smi=(table, "8.9\n"))
    assert check.status == d.WARNING
    assert "RTX 4090" in check.detail and "570.133.07" in check.detail
    assert "install.sh" in check.fix and "+cu128" in check.fix


def test_hugging_face_token_is_seen_from_the_environment(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    assert d.check_hub_token().status == d.OK
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent/token")
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", "/nonexistent/stored_tokens")
    check = d.check_hub_token()
    assert check.status == d.NOTE and "Hugging Face account" in check.fix


def test_a_crashing_check_is_reported_not_raised(monkeypatch):
    from ftstudio.engine import doctor as engine_doctor

    def broken() -> d.Check:  # stands for a check that meets something unforeseen
        raise RuntimeError("boom")

    monkeypatch.setattr(engine_doctor, "CHECKS", (d.check_python, broken))
    report = run_checks()
    assert [c.status for c in report.checks] == [d.OK, d.WARNING]
    assert "boom" in report.checks[1].detail
