"""The Label page's place in its queue (core/queue_cursor.py), without Qt."""

from __future__ import annotations

from ftstudio.core.queue_cursor import QueueCursor


def test_labelled_examples_leave_the_queue_and_back_returns_to_them():
    cursor = QueueCursor()
    cursor.load("todo", [1, 2, 3])
    assert cursor.current == 1
    cursor.done_with(1, "accept", still_in_queue=False)
    assert (cursor.ids, cursor.current, cursor.history) == ([2, 3], 2, [1])
    cursor.done_with(2, "accept", still_in_queue=False)
    assert cursor.current == 3
    assert cursor.back() == 2 and cursor.current == 3  # 2 left the queue: shown, the cursor stays
    assert cursor.back() == 1 and cursor.back() is None


def test_a_skipped_example_waits_at_the_back_and_the_cursor_comes_round():
    cursor = QueueCursor()
    cursor.load("todo", [1, 2, 3])
    cursor.done_with(1, "skip", still_in_queue=True)
    assert cursor.ids == [2, 3, 1] and cursor.current == 2
    cursor.done_with(2, "accept", still_in_queue=False)
    cursor.done_with(3, "accept", still_in_queue=False)
    assert cursor.ids == [1] and cursor.current == 1  # round again to the skipped one
    cursor.done_with(1, "accept", still_in_queue=False)
    assert cursor.current is None


def test_in_a_review_queue_a_kept_example_is_stepped_over():
    cursor = QueueCursor()
    cursor.load("flagged", [4, 5])
    cursor.done_with(4, "skip", still_in_queue=True)  # skipping outside to-do does not move it back
    assert cursor.ids == [4, 5] and cursor.current == 5
    cursor.done_with(5, "accept", still_in_queue=True)
    assert cursor.current is None  # no coming round outside to-do


def test_an_example_done_elsewhere_in_the_queue_keeps_the_cursor_on_its_example():
    cursor = QueueCursor()
    cursor.load("todo", [1, 2, 3, 4])
    cursor.done_with(1, "accept", False)
    cursor.done_with(2, "accept", False)
    assert cursor.current == 3
    cursor.pos = 1  # on 4
    cursor.done_with(3, "accept", still_in_queue=False)  # 3, before the cursor, leaves
    assert cursor.ids == [4] and cursor.current == 4


def test_undo_brings_the_example_back_under_the_cursor():
    cursor = QueueCursor()
    cursor.load("todo", [1, 2, 3])
    cursor.done_with(1, "accept", False)
    assert cursor.current == 2
    cursor.undone(1, in_queue=True)
    assert cursor.current == 1 and cursor.ids == [1, 2, 3] and cursor.history == []
    cursor.undone(9, in_queue=False)  # not this queue's: nothing moves
    assert cursor.ids == [1, 2, 3] and cursor.current == 1


def test_reading_the_queue_again_keeps_the_example_on_screen():
    cursor = QueueCursor()
    cursor.load("todo", [1, 2, 3])
    cursor.done_with(1, "accept", False)
    assert cursor.load("todo", [2, 3, 7], keep=3) and cursor.current == 3
    # Gone from the queue but still in the project (labelled by someone else): stays on screen.
    assert cursor.load("todo", [2, 7], keep=3, keep_exists=True) and cursor.pos == 1
    # Deleted: the queue starts again from the top.
    assert not cursor.load("todo", [2, 7], keep=3) and cursor.current == 2
    cursor.drop_current()
    assert cursor.current == 7
