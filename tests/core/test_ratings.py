"""Votes, win/tie/loss with Wilson intervals, Bradley-Terry, preference export
and stored evaluations, on a real project database."""

from __future__ import annotations

import math

import pytest

from ftstudio.core import preferences, ratings
from ftstudio.core.ratings import PairRecord, bradley_terry, wilson_interval

SETTINGS = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 16, "seed": 0}


def _prompt(i: int) -> list[dict]:
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": f"Question {i}?"}]


def _outputs(project, i: int, models: list[str]) -> list[int]:
    return [ratings.add_generation(project, m, _prompt(i), f"answer of {m} to {i}", SETTINGS) for m in models]


def test_wilson_matches_hand_computed_values():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19207) / 1.38415 = 0.71673,
    # half-width 1.96 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658.
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    # 0 of 5: lower bound 0, upper z^2/(n + z^2) = 3.8415 / 8.8415
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0
    assert hi == pytest.approx(3.8415 / 8.8415, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_bradley_terry_two_models_with_ties_as_half_wins():
    # A: 3 wins, 1 loss, 2 ties -> A 4 "wins", B 2; strengths in ratio 2:1,
    # rescaled to geometric mean 1: sqrt(2) and 1/sqrt(2).
    ranking = bradley_terry([PairRecord("A", "B", wins=3, losses=1, ties=2)])
    assert ranking.converged
    assert ranking.models == ["A", "B"]
    assert ranking.strength["A"] == pytest.approx(math.sqrt(2), rel=1e-8)
    assert ranking.strength["B"] == pytest.approx(1 / math.sqrt(2), rel=1e-8)
    assert ranking.win_probability("A", "B") == pytest.approx(2 / 3)


def test_bradley_terry_chain_of_three():
    # A beat B 2-1, B beat C 2-1, A and C never met. Score equations:
    # 2 = 3 pA/(pA+pB) -> pA = 2 pB; 1 = 3 pC/(pB+pC) -> pB = 2 pC.
    # So 4:2:1, geometric mean 2 -> 2, 1, 0.5.
    ranking = bradley_terry([PairRecord("A", "B", wins=2, losses=1), PairRecord("B", "C", wins=2, losses=1)])
    assert ranking.models == ["A", "B", "C"]
    assert ranking.strength["A"] == pytest.approx(2.0, rel=1e-7)
    assert ranking.strength["B"] == pytest.approx(1.0, rel=1e-7)
    assert ranking.strength["C"] == pytest.approx(0.5, rel=1e-7)


def test_bradley_terry_cycle_is_even_and_prior_keeps_a_winless_model_finite():
    cycle = [PairRecord("A", "B", 2, 1), PairRecord("B", "C", 2, 1), PairRecord("A", "C", 1, 2)]
    ranking = bradley_terry(cycle)
    for m in "ABC":
        assert ranking.strength[m] == pytest.approx(1.0, rel=1e-8)
    # A 3-0 over B with one virtual tie: 3.5 against 0.5 -> ratio 7.
    ranking = bradley_terry([PairRecord("A", "B", wins=3)], prior=1.0)
    assert ranking.strength["A"] == pytest.approx(math.sqrt(7), rel=1e-8)
    assert ranking.strength["B"] == pytest.approx(1 / math.sqrt(7), rel=1e-8)


def test_votes_make_pair_records_and_ranking(project):
    models = ["base:m", "run:one", "run:two"]
    cast = []
    for i in range(6):
        base, one, two = _outputs(project, i, models)
        if i < 3:
            cast.append(ratings.add_vote(project, [one, base], "pick", "ann", chosen=one))
        elif i == 3:
            cast.append(ratings.add_vote(project, [base, one], "tie", "ann"))
        elif i == 4:
            cast.append(ratings.add_vote(project, [two, one, base], "pick", "bob", chosen=two, comment="clearer"))
        else:
            cast.append(ratings.add_vote(project, [two, base], "both_bad", "bob"))
    stored = ratings.votes(project)
    assert [v.id for v in stored] == cast
    assert stored[4].chosen_model == "run:two"
    assert stored[4].shown_models == ["run:two", "run:one", "base:m"]
    assert stored[4].comment == "clearer" and stored[4].voter == "bob"

    rec = ratings.pair_record(stored, "run:one", "base:m")
    assert (rec.wins, rec.ties, rec.losses, rec.both_bad) == (3, 1, 0, 0)
    rec = ratings.pair_record(stored, "run:two", "base:m")
    assert (rec.wins, rec.ties, rec.losses, rec.both_bad) == (1, 1, 0, 1)
    rec = ratings.pair_record(stored, "run:one", "run:two")
    assert (rec.wins, rec.ties, rec.losses) == (0, 0, 1)
    assert rec.decisive_win_rate == 0.0
    assert rec.interval("win") == wilson_interval(0, 1)

    ranking = bradley_terry(ratings.pair_records(stored), prior=1.0)
    assert ranking.models[-1] == "base:m"
    assert set(ranking.models) == set(models)


def test_vote_validation_names_the_problem(project):
    a, b = _outputs(project, 0, ["base:m", "run:x"])
    with pytest.raises(ValueError, match="verdict"):
        ratings.add_vote(project, [a, b], "maybe", "ann")
    with pytest.raises(ValueError, match="chosen"):
        ratings.add_vote(project, [a, b], "pick", "ann")
    with pytest.raises(ValueError, match="not among"):
        ratings.add_vote(project, [a, b], "pick", "ann", chosen=999)
    with pytest.raises(ValueError, match="voter"):
        ratings.add_vote(project, [a, b], "tie", " ")
    (c,) = _outputs(project, 1, ["base:m"])
    with pytest.raises(ValueError, match="different models"):
        ratings.add_vote(project, [a, c], "tie", "ann")
    assert ratings.votes(project) == []


def test_generations_round_trip_and_lookup(project):
    gid = ratings.add_generation(project, "run:x", _prompt(3), "out", SETTINGS, example_id=None)
    g = ratings.get_generations(project, [gid])[gid]
    assert g.messages == _prompt(3) and g.output == "out" and g.settings == SETTINGS
    assert ratings.find_generation(project, "run:x", _prompt(3), dict(reversed(SETTINGS.items()))).id == gid
    assert ratings.find_generation(project, "run:x", _prompt(3), {**SETTINGS, "seed": 1}) is None
    assert ratings.prompt_text(g.prompt) == "Question 3?"
    assert ratings.decode_prompt("plain words") == [{"role": "user", "content": "plain words"}]


def test_preference_export_reads_back_with_datasets(project, tmp_path):
    import datasets

    base, one, two = _outputs(project, 0, ["base:m", "run:one", "run:two"])
    ratings.add_vote(project, [base, two, one], "pick", "ann", chosen=one)
    b2, o2 = _outputs(project, 1, ["base:m", "run:one"])
    ratings.add_vote(project, [o2, b2], "tie", "ann")  # no preference: not exported
    path = tmp_path / "prefs.jsonl"
    assert preferences.export_preferences(project, path) == 2
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert len(ds) == 2
    assert ds[0]["prompt"] == _prompt(0)
    assert ds[0]["chosen"] == [{"role": "assistant", "content": "answer of run:one to 0"}]
    assert {r[0]["content"] for r in ds["rejected"]} == {"answer of base:m to 0", "answer of run:two to 0"}


def test_stored_evaluations_by_run(project):
    run = project.create_run({"model": "m", "method": "lora"})
    first = ratings.store_evaluation(project, None, "base:m", {"loss": 2.0, "perplexity": math.exp(2.0)})
    second = ratings.store_evaluation(project, run, ratings.run_key(run), {"loss": 1.0, "exact_match": 0.5})
    assert [e.id for e in ratings.evaluations(project)] == [second, first]
    (only,) = ratings.evaluations(project, run)
    assert only.run_id == run and only.results == {"loss": 1.0, "exact_match": 0.5}
    latest = ratings.latest_evaluations(project)
    assert latest["base:m"].results["perplexity"] == pytest.approx(math.exp(2.0))
    # a newer evaluation of the same model wins; what is stored reads back the same from the database
    third = ratings.store_evaluation(project, None, "base:m", {"loss": 1.8, "per_label": {"a": {"n": 2}}})
    from ftstudio.core.project import Project

    with Project.open(project.path) as other:
        latest = ratings.latest_evaluations(other)
        assert latest["base:m"].id == third and latest["base:m"].results == {"loss": 1.8, "per_label": {"a": {"n": 2}}}
        assert latest[ratings.run_key(run)].id == second


def test_model_keys_read_as_words(tmp_path):
    assert ratings.model_label(ratings.base_key("bundled:SmolLM2-135M-Instruct")) == "Base (SmolLM2-135M-Instruct)"
    assert ratings.model_label(ratings.run_key("r1")) == "Run r1"
    assert ratings.run_id_of(ratings.run_key("r1")) == "r1"
    assert ratings.model_label(ratings.adapter_key(tmp_path / "mine" / "adapter")) == "Adapter mine"


def test_evaluations_stored_by_the_command_line_read_as_model_keys(project):
    # `ftstudio evaluate` stores the base spec with the run id beside it.
    run = project.create_run({"model": "bundled:m", "method": "lora"})
    ratings.store_evaluation(project, None, "bundled:m", {"loss": 2.0})
    ratings.store_evaluation(project, run, "bundled:m", {"loss": 1.5})
    ratings.store_evaluation(project, None, ratings.base_key("bundled:m"), {"loss": 1.9})
    latest = ratings.latest_evaluations(project)
    assert set(latest) == {ratings.base_key("bundled:m"), ratings.run_key(run)}
    assert latest[ratings.base_key("bundled:m")].results["loss"] == 1.9
    assert latest[ratings.run_key(run)].results["loss"] == 1.5
