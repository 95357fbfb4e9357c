"""The training engine: model loading, tokenising with loss masks, packing,
the training loop, generation, evaluation, memory estimates. No Qt here."""

# DPO and KTO register their run with the training loop (engine.training.RUN_CLASSES).
from ftstudio.engine import preference as _preference  # noqa: E402, F401
