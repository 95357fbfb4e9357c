"""The Compare page: answers side by side, blind rating, results, held-out evaluation and chat."""
