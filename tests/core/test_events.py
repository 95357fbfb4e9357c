from ftstudio.core import events as ev


def test_every_event_round_trips_through_json(tmp_path):
    items = [
        ev.Progress(3, 10, 0.3, 1.5, 4.0), ev.StepMetrics(3, 1.2, 1e-4, 0.5, 100.0, gpu_util=None),
        ev.EvalMetrics(3, 1.1), ev.Sample(3, "p", "o", "r"), ev.Checkpoint(3, "/x"), ev.Log("hi"),
        ev.Finished(10, "/a", 1.0, 1.1), ev.Failed("nan", "loss became NaN", "lower the learning rate"),
        ev.StepMetrics(4, 1.1, 1e-4, 0.4, 90.0, 2 << 30, 3 << 30, 5 << 30, 24 << 30, 55.0, 512, 6 << 30),
        ev.FitPlan(0, 1024, 4, True, 7 << 30, "1,024 tokens per micro-batch x 4, checkpointing on"),
        ev.FitPlan(5, 512, 8, True, 0, "512 tokens per micro-batch", "out_of_memory"),
    ]
    sink = ev.JsonlSink(tmp_path / "m.jsonl")
    for item in items:
        sink(item)
    sink.close()
    with open(tmp_path / "m.jsonl", "a") as fh:
        fh.write('{"event": "StepMetr')  # a torn last line, as after a crash
    assert ev.read_events(tmp_path / "m.jsonl") == items


def test_metrics_written_before_peak_reserved_memory_read_back(tmp_path):
    # a metrics.jsonl line as runs wrote it before StepMetrics had vram_peak_reserved
    path = tmp_path / "old.jsonl"
    path.write_text('{"event": "StepMetrics", "step": 1, "loss": 2.0, "lr": 0.001, "grad_norm": 0.5, '
                    '"tokens_per_s": 10.0, "vram_allocated": 7, "vram_reserved": 9, "vram_peak": 8, '
                    '"vram_total": 100, "gpu_util": null, "tokens": 64}\n')
    (metrics,) = ev.read_events(path)
    assert isinstance(metrics, ev.StepMetrics)
    assert (metrics.vram_peak, metrics.vram_reserved, metrics.vram_peak_reserved) == (8, 9, 0)
