"""The labelling core: schema, annotations through the journal, queues, agreement."""

from __future__ import annotations

import json

import pytest

from ftstudio.core.examples import NewExample
from ftstudio.core.agreement import AgreementReport, agreement_of, cohen_kappa, kappa_words
from ftstudio.core.labelling import Labelling, LabellingError, SessionStats, check_template, item_of, unwrap, wrap


def _unlabelled(project, texts):
    return project.add_examples([NewExample(messages=[{"role": "user", "content": t}], status="unlabelled",
                                            split="train") for t in texts], actor="import")


@pytest.fixture
def lab(project):
    lab = Labelling(project)
    lab.set_kind("classification")
    for name in ("yes", "no"):
        lab.add_label(name, "lead")
    return lab


def _row(project, example_id):
    return dict(project.execute("SELECT * FROM examples WHERE id = ?", (example_id,)).fetchone())


# -- agreement ------------------------------------------------------------------------------


def test_kappa_of_a_hand_computed_table(project, lab):
    """The 2x2 table: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 (n = 50).
    p_o = 35/50 = 0.7; A says yes 25/50, B 30/50, so p_e = 0.5*0.6 + 0.5*0.4 = 0.5;
    kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4. Specific agreement: yes 2*20/(25+30) = 8/11,
    no 2*15/(25+20) = 2/3."""
    cells = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    ids = _unlabelled(project, [f"item {i}" for i in range(len(cells))])
    for example_id, (a, b) in zip(ids, cells):
        lab.accept(example_id, "ana", label=a)
        lab.accept(example_id, "ben", label=b)
    assert cohen_kappa(cells) == pytest.approx(0.4)
    report = lab.agreement()
    assert report.annotators == ["ana", "ben"]
    (pair,) = report.pairs
    assert (pair.a, pair.b, pair.n, pair.agreed) == ("ana", "ben", 50, 35)
    assert pair.observed == pytest.approx(0.7)
    assert pair.kappa == pytest.approx(0.4)
    assert report.kappa == pytest.approx(0.4)
    assert report.per_label["yes"]["agreement"] == pytest.approx(8 / 11)
    assert report.per_label["no"]["agreement"] == pytest.approx(2 / 3)
    assert report.examples_compared == 50
    assert report.disagreements == 15
    assert set(lab.disagreement_ids()) == {i for i, (a, b) in zip(ids, cells) if a != b}
    assert kappa_words(0.4) == "fair"


def test_kappa_of_three_annotators_by_hand(project, lab):
    """Ten items, labels y/n:
        ana  y y y y y n n n n n
        ben  y y y y n n n n n y
        cy   y y y n n n n n y y
    Each says y five times, so every pair has p_e = 0.5. ana-ben agree on 8 (kappa
    (0.8 - 0.5) / 0.5 = 0.6), ana-cy on 6 (0.2), ben-cy on 8 (0.6). Every pair shares all
    ten, so the project's kappa is their plain mean, 1.4 / 3. Items 4, 5, 9 and 10 are
    disagreements. y chosen by both: 4 + 3 + 4 = 11 of 30 choices: 2 * 11 / 30."""
    rows = {"ana": "yyyyynnnnn", "ben": "yyyynnnnny", "cy": "yyynnnnnyy"}
    ids = _unlabelled(project, [f"item {i}" for i in range(10)])
    for annotator, labels in rows.items():
        for example_id, label in zip(ids, labels):
            lab.accept(example_id, annotator, label={"y": "yes", "n": "no"}[label])
    report = lab.agreement()
    assert report.annotators == ["ana", "ben", "cy"]
    pairs = {(p.a, p.b): p for p in report.pairs}
    assert {k: (p.n, p.agreed) for k, p in pairs.items()} == {("ana", "ben"): (10, 8), ("ana", "cy"): (10, 6),
                                                             ("ben", "cy"): (10, 8)}
    assert pairs["ana", "ben"].kappa == pytest.approx(0.6)
    assert pairs["ana", "cy"].kappa == pytest.approx(0.2)
    assert pairs["ben", "cy"].kappa == pytest.approx(0.6)
    assert report.kappa == pytest.approx(1.4 / 3)
    assert report.observed == pytest.approx(22 / 30)
    assert report.examples_compared == 10 and report.disagreements == 4
    assert set(lab.disagreement_ids()) == {ids[3], ids[4], ids[8], ids[9]}
    assert report.per_label["yes"]["agreement"] == pytest.approx(22 / 30)


def test_kappa_edge_cases():
    assert cohen_kappa([]) is None
    # Both always say the same single label: p_e = 1 and kappa is not defined.
    assert cohen_kappa([("a", "a")] * 4) is None
    assert cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    # Always opposite: p_o = 0, p_e = 0.5, kappa = -1.
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)
    assert kappa_words(None) == "not defined" and kappa_words(0.9) == "almost perfect"


def test_agreement_of_three_annotators_is_per_pair():
    values = {1: {"a": "x", "b": "x", "c": "y"}, 2: {"a": "y", "b": "y"}, 3: {"a": "x", "c": "x"}}
    report = agreement_of(values)
    assert isinstance(report, AgreementReport)
    pairs = {(p.a, p.b): p for p in report.pairs}
    assert (pairs["a", "b"].n, pairs["a", "b"].agreed) == (2, 2)
    assert (pairs["a", "c"].n, pairs["a", "c"].agreed) == (2, 1)
    assert (pairs["b", "c"].n, pairs["b", "c"].agreed) == (1, 0)
    assert report.examples_compared == 3 and report.disagreements == 1
    assert report.observed == pytest.approx(3 / 5)


# -- the label set, rename and undo ---------------------------------------------------------


def test_label_set_editing_and_its_errors(project):
    lab = Labelling(project)
    a = lab.add_label("billing", "lead")
    b = lab.add_label("technical", "lead")
    assert (a.shortcut, b.shortcut, a.position, b.position) == ("1", "2", 0, 1)
    assert a.colour != b.colour
    with pytest.raises(LabellingError, match="already has"):
        lab.add_label(" billing ", "lead")
    with pytest.raises(LabellingError, match="taken by Skip"):
        lab.set_label_shortcut("billing", "S", "lead")
    with pytest.raises(LabellingError, match="already picks 'technical'"):
        lab.set_label_shortcut("billing", "2", "lead")
    lab.set_label_shortcut("billing", "B", "lead")
    lab.set_label_colour("billing", "#AABBCC", "lead")
    with pytest.raises(LabellingError, match="colour"):
        lab.set_label_colour("billing", "red", "lead")
    lab.add_label("account", "lead")
    lab.move_label("account", 0, "lead")
    assert [(d.name, d.position) for d in lab.labels()] == [("account", 0), ("billing", 1), ("technical", 2)]
    assert lab.schema().label_for_key("b") == "billing"
    lab.undo("lead")  # the move (undo goes by who made the change)
    assert [d.name for d in lab.labels()] == ["billing", "technical", "account"]
    ex = project.add_example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "account"}],
                             label="account")
    with pytest.raises(LabellingError, match="1 example carries 'account'"):
        lab.remove_label("account", "lead")
    project.delete_examples([ex])
    lab.remove_label("account", "lead")
    assert [d.name for d in lab.labels()] == ["billing", "technical"]


def test_rename_updates_every_example_and_undoes_as_one_step(project):
    lab = Labelling(project)
    lab.set_kind("classification")
    lab.add_label("billing", "lead")
    lab.add_label("technical", "lead")
    ids = project.add_examples([
        NewExample(messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": lbl}],
                   label=lbl, split="train")
        for i, lbl in enumerate(["billing", "technical", "billing"])
    ], actor="import")
    lab.accept(ids[0], "ana", label="billing")
    lab.accept(ids[1], "ben", label="billing")
    changed = lab.rename_label("billing", "payments", "lead")
    assert changed == 3
    assert [d.name for d in lab.labels()] == ["payments", "technical"]
    assert lab.labels()[0].shortcut == "1"
    for i in (ids[0], ids[1], ids[2]):
        ex = project.get_example(i)
        assert ex.label == "payments" and ex.messages[-1]["content"] == "payments"
    assert lab.annotation(ids[0], "ana").label == "payments"
    assert lab.annotation(ids[1], "ben").label == "payments"

    result = lab.undo("lead")
    assert result.schema_changed and set(result.ids) == set(ids)
    assert [d.name for d in lab.labels()] == ["billing", "technical"]
    assert [project.get_example(i).label for i in ids] == ["billing", "billing", "billing"]
    assert project.get_example(ids[2]).messages[-1]["content"] == "billing"
    assert lab.annotation(ids[0], "ana").label == "billing"
    assert project.get_example(ids[1]).label == "billing"  # ben's accept is still in effect
    lab.redo("lead")
    assert [d.name for d in lab.labels()] == ["payments", "technical"]
    assert lab.annotation(ids[1], "ben").label == "payments"


def test_rename_into_an_existing_label_merges(project):
    lab = Labelling(project)
    for name in ("billing", "payments", "technical"):
        lab.add_label(name, "lead")
    (i,) = project.add_examples([NewExample(messages=[{"role": "user", "content": "q"},
                                                      {"role": "assistant", "content": "payments"}],
                                            label="payments")], actor="import")
    assert lab.rename_label("payments", "billing", "lead") == 1
    assert [(d.name, d.position) for d in lab.labels()] == [("billing", 0), ("technical", 1)]
    assert project.get_example(i).label == "billing"
    lab.undo("lead")
    assert [d.name for d in lab.labels()] == ["billing", "payments", "technical"]


def test_adopting_the_labels_found_in_the_data_is_one_step(project):
    project.add_examples([NewExample(messages=[{"role": "user", "content": f"q{i}"},
                                               {"role": "assistant", "content": lbl}], label=lbl)
                          for i, lbl in enumerate(["b", "a", "b", "c"])], actor="import")
    lab = Labelling(project)
    assert lab.kind() == "classification"  # labels in the data: choose-a-label by default
    assert lab.adopt_data_labels("lead") == ["b", "a", "c"]
    assert [(d.name, d.shortcut) for d in lab.labels()] == [("b", "1"), ("a", "2"), ("c", "3")]
    lab.undo("lead")
    assert lab.labels() == []


# -- annotations, the journal and training data ----------------------------------------------


def test_accept_writes_annotation_example_and_template_together_and_undoes(project, lab):
    project.set_setting("labelling.template", "Is this spam? {input}")
    (i,) = _unlabelled(project, ["Win a prize now"])
    assert lab.accept(i, "ana", label="yes")
    ex = project.get_example(i)
    assert ex.messages == [{"role": "user", "content": "Is this spam? Win a prize now"},
                           {"role": "assistant", "content": "yes"}]
    assert (ex.status, ex.label, ex.annotator) == ("labelled", "yes", "ana")
    assert item_of(ex, lab.template()).input == "Win a prize now"
    ann = lab.annotation(i, "ana")
    assert (ann.status, ann.label, ann.answer) == ("labelled", "yes", None)
    data = project.prepared_data()
    assert data.train == [ex.messages]
    # Accepting the same again changes nothing and writes no journal entry.
    n = len(project.journal())
    assert not lab.accept(i, "ana", label="yes")
    assert len(project.journal()) == n

    assert lab.undo("ana").ids == [i]
    ex = project.get_example(i)
    assert (ex.status, ex.label, ex.annotator) == ("unlabelled", None, None)
    assert ex.messages == [{"role": "user", "content": "Win a prize now"}]
    assert lab.annotation(i, "ana") is None
    lab.redo("ana")
    assert lab.annotation(i, "ana").label == "yes" and project.get_example(i).label == "yes"


def test_free_text_answers_and_errors(project):
    lab = Labelling(project)
    lab.set_kind("free_text")
    (i,) = _unlabelled(project, ["Say hello in French"])
    with pytest.raises(LabellingError, match="Write the answer"):
        lab.accept(i, "ana", answer="  ")
    with pytest.raises(LabellingError, match="Enter your name"):
        lab.accept(i, " ", answer="Bonjour")
    lab.accept(i, "ana", answer=" Bonjour ")
    ex = project.get_example(i)
    assert ex.messages[-1] == {"role": "assistant", "content": "Bonjour"} and ex.label is None
    assert lab.annotation(i, "ana").answer == "Bonjour"
    lab.accept(i, "ben", answer="bonjour")  # the same answer, up to case and spaces
    assert lab.disagreement_ids() == []
    lab.accept(i, "cy", answer="Salut")
    assert lab.disagreement_ids() == [i]
    report = lab.agreement()
    assert report.field == "answer" and report.kappa is None


def test_classification_needs_a_label_from_the_set(project, lab):
    (i,) = _unlabelled(project, ["x"])
    with pytest.raises(LabellingError, match="Choose a label"):
        lab.accept(i, "ana")
    with pytest.raises(LabellingError, match="not in the label set"):
        lab.accept(i, "ana", label="maybe")


def test_changing_the_template_rerenders_labelled_examples_undoably(project, lab):
    a, b, c = _unlabelled(project, ["one", "two", "three"])
    lab.accept(a, "ana", label="yes")
    lab.accept(b, "ana", label="no")
    # c stays unlabelled: its text is the raw input and is not templated until it is labelled.
    assert check_template("no placeholder") is not None and check_template("{input} {input}") is not None
    with pytest.raises(LabellingError, match="must contain"):
        lab.set_template("Classify:", "lead")
    assert lab.set_template("Classify: {input}\nAnswer:", "lead") == 2
    assert project.get_example(a).messages[0]["content"] == "Classify: one\nAnswer:"
    assert project.get_example(c).messages[0]["content"] == "three"
    lab.accept(c, "ana", label="yes")
    assert project.get_example(c).messages[0]["content"] == "Classify: three\nAnswer:"
    lab.undo("ana")  # the accept of c
    result = lab.undo("lead")  # the template change
    assert result.schema_changed
    assert lab.template() == "{input}"
    assert project.get_example(a).messages[0]["content"] == "one"
    assert wrap("<{input}>", "x") == "<x>" and unwrap("<{input}>", "<x>") == "x" and unwrap("<{input}>", "x") == "x"


# -- queues ----------------------------------------------------------------------------------


def test_queues_progress_skip_flag_and_review(project, lab):
    ids = _unlabelled(project, [f"t{i}" for i in range(5)])
    (pre,) = project.add_examples([NewExample(messages=[{"role": "user", "content": "old"},
                                                        {"role": "assistant", "content": "no"}], label="no")],
                                  actor="import")
    assert lab.queue("todo", "ana") == [*ids, pre]  # unlabelled first
    lab.accept(ids[0], "ana", label="yes")
    lab.skip(ids[1], "ana")
    lab.flag(ids[2], "ana", label="no", comment="unsure")
    assert lab.queue("todo", "ana") == [ids[3], ids[4], pre, ids[1]]  # skipped ones last
    assert lab.in_queue("todo", ids[1], "ana") and not lab.in_queue("todo", ids[0], "ana")
    # Each annotator has their own queue; examples nobody has labelled come first.
    assert lab.queue("todo", "ben") == [ids[1], ids[3], ids[4], ids[0], ids[2], pre]
    assert lab.queue("flagged", "ana") == [ids[2]]
    assert project.get_example(ids[2]).status == "flagged"
    assert lab.annotation(ids[2], "ana").comment == "unsure"
    assert lab.queue("mine", "ana") == [ids[0], ids[2]]
    p = lab.progress("ana")
    assert (p.total, p.done, p.flagged) == (6, 2, 1)
    assert p.text == "2 of 6, 1 flagged"
    # Skipping a labelled example keeps its label.
    assert not lab.skip(ids[0], "ana")
    assert lab.annotation(ids[0], "ana").status == "labelled"
    # Accepting a flagged example puts it back into the training data.
    lab.accept(ids[2], "ben", label="yes")
    assert project.get_example(ids[2]).status == "labelled" and lab.queue("flagged", "ana") == []
    # Disagreement: ana said yes, ben says no on ids[0]; a reviewer decides.
    lab.accept(ids[0], "ben", label="no")
    assert lab.queue("disagreements", "cy") == [ids[0]]
    assert lab.in_queue("disagreements", ids[0], "cy")
    lab.accept(ids[0], "cy", label="yes", resolve=True)
    assert lab.queue("disagreements", "cy") == [] and lab.review(ids[0])["reviewer"] == "cy"
    assert project.get_example(ids[0]).label == "yes"
    lab.undo("cy")
    assert lab.queue("disagreements", "cy") == [ids[0]] and lab.review(ids[0]) is None
    sizes = lab.queue_sizes("ana")
    assert sizes == {"todo": 4, "least_sure": 0, "review": 0, "flagged": 0, "mine": 2, "disagreements": 1}
    assert lab.annotators() == ["ana", "ben"]


def test_a_share_of_what_others_labelled_comes_early_for_agreement(project, lab):
    ids = _unlabelled(project, [f"t{i}" for i in range(1, 201)])
    for i in ids[:100]:
        lab.accept(i, "ana", label="yes")
    lab.set_overlap(10)
    queue = lab.queue("todo", "ben")
    early = queue[:110]
    # The 100 unlabelled ones, and 10 of ana's, interleaved by id.
    assert set(ids[100:]) <= set(early)
    twice = [i for i in early if i in set(ids[:100])]
    assert len(twice) == 10
    # spread over what ana labelled, not just her first ten
    assert max(twice) - min(twice) > 50 and twice != ids[:10]
    assert early == sorted(early)
    # the same share every time and for every other annotator, so their labels can be compared
    assert [i for i in lab.queue("todo", "ben")[:110] if i in set(ids[:100])] == twice
    assert [i for i in lab.queue("todo", "cy")[:110] if i in set(ids[:100])] == twice
    lab.set_overlap(20)  # a larger share keeps the examples of the smaller one
    more = [i for i in lab.queue("todo", "ben")[:120] if i in set(ids[:100])]
    assert len(more) == 20 and set(twice) <= set(more)
    lab.set_overlap(0)
    assert lab.queue("todo", "ben")[:100] == ids[100:]
    with pytest.raises(LabellingError):
        lab.set_overlap(101)


def test_session_stats_leave_long_pauses_out():
    t = [0.0]
    stats = SessionStats(clock=lambda: t[0], idle_s=60)
    assert stats.per_minute is None
    for _ in range(10):
        t[0] += 3.0
        stats.record()
    assert stats.per_minute == pytest.approx(20.0)  # 10 in 30 s
    t[0] += 3600  # an hour away counts as one minute
    stats.record()
    assert stats.count == 11 and stats.per_minute == pytest.approx(11 / 1.5)
    stats.record(-1)
    assert stats.count == 10


def test_journal_entries_name_the_annotator(project, lab):
    (i,) = _unlabelled(project, ["x"])
    lab.accept(i, "ana", label="no")
    entries = project.journal(i)
    assert {e["actor"] for e in entries[:2]} == {"ana"}
    assert {e["action"] for e in entries[:2]} == {"update", "row:annotations"}
    by_action = {e["action"]: e for e in entries[:2]}
    after = json.loads(by_action["update"]["after"])
    assert {k: after[k] for k in ("status", "label", "annotator")} == {"status": "labelled", "label": "no",
                                                                      "annotator": "ana"}
    assert json.loads(by_action["update"]["before"])["status"] == "unlabelled"
    annotation = json.loads(by_action["row:annotations"]["after"])
    assert (annotation["example_id"], annotation["annotator"], annotation["label"]) == (i, "ana", "no")
    assert by_action["row:annotations"]["before"] is None
