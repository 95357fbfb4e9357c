"""The Runs page: every training run of the project, its curves and settings,
side by side."""
