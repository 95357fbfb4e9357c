"""The Label page: a focused mode for labelling examples one at a time."""
