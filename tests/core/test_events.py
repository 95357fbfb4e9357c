from ftstudio.core import events as ev


def test_every_event_round_trips_through_json(tmp_path):
    items = [
        ev.Progress(3, 10, 0.3, 1.5, 4.0), ev.StepMetrics(3, 1.2, 1e-4, 0.5, 100.0, gpu_util=None),
        ev.EvalMetrics(3, 1.1), ev.Sample(3, "p", "o", "r"), ev.Checkpoint(3, "/x"), ev.Log("hi"),
        ev.Finished(10, "/a", 1.0, 1.1), ev.Failed("nan", "loss became NaN", "lower the learning rate"),
    ]
    sink = ev.JsonlSink(tmp_path / "m.jsonl")
    for item in items:
        sink(item)
    sink.close()
    with open(tmp_path / "m.jsonl", "a") as fh:
        fh.write('{"event": "StepMetr')  # a torn last line, as after a crash
    assert ev.read_events(tmp_path / "m.jsonl") == items
