"""The Train page: model and settings with a live memory/time estimate, and
the dashboard that follows a run as it trains."""
