"""The training engine: model loading, tokenising with loss masks, packing,
the training loop, generation, evaluation, memory estimates. No Qt here."""
