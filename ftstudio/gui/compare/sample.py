"""A representative state of the Compare page without running a model, for
screenshot scripts and demonstrations.

``stage_sample_state(page, tab)`` stores sample answers for the chosen models
and prompts (only where none are stored yet), shows them side by side, and
for the other tabs starts a blind round, casts a few votes or writes one chat
exchange. It writes into the page's project: use it on a throwaway copy.
"""

from __future__ import annotations

from ftstudio.core import ratings

TABS = ("compare", "blind", "results", "evaluate", "chat")
SAMPLE_PROMPTS = [
    "My card was charged twice for one order.",
    "The app crashes when I open the settings page.",
    "Where is the refund for the shoes I sent back?",
    "Thank you, the parcel arrived a day early!",
]


def _sample_answer(n: int, is_base: bool, reference: str | None, prompt: str) -> str:
    if is_base:
        return (f"Thank you for reaching out. It sounds like this is about: \"{prompt[:60]}\". I would suggest "
                "contacting the support team with your order number so they can look into it for you.")
    if reference:
        return reference if n % 2 == 0 else f"{reference}."
    return "I am sorry to hear that. Could you send me your order number so I can check what happened?"


def stage_sample_state(page, tab: str = "compare") -> None:
    """Fill ``page`` (a ComparePage) as after a comparison and show ``tab`` (one of TABS)."""
    if tab not in TABS:
        raise ValueError(f"unknown tab {tab!r} (expected one of {', '.join(TABS)})")
    sel = page.selection
    sel.limit.setValue(min(sel.limit.value(), 4))
    if not sel.prompts():
        sel.set_source("typed")
        sel.typed.setPlainText("\n\n".join(SAMPLE_PROMPTS))
    settings = sel.sampling()
    for i, prompt in enumerate(sel.prompts()):
        for n, ref in enumerate(sel.checked_refs()):
            if ratings.find_generation(page.project, ref.key, prompt.messages, settings) is None:
                text = _sample_answer(n + i, ref.is_base, prompt.reference, ratings.prompt_text(prompt.messages))
                ratings.add_generation(page.project, ref.key, prompt.messages, text, settings,
                                       example_id=prompt.example_id)
    page.show_saved_answers()
    if tab in ("blind", "results") and len(sel.checked_refs()) >= 2:
        if not page.blind.voter():
            page.context.set_actor("Expert")
        page.start_blind_round()
        if tab == "results":
            verdicts = iter(("pick", "tie", "pick", "both_bad"))
            while page.blind.current is not None:
                verdict = next(verdicts, "pick")
                page.blind.vote(verdict, 0 if verdict == "pick" else None)
    if tab == "chat":
        refs = sel.all_refs()
        if refs:
            ref = refs[-1]
            page.chat.model_combo.setCurrentIndex(len(refs) - 1)
            page.chat.begin_turn(SAMPLE_PROMPTS[0], ref)
            page.chat.end_turn(ref, _sample_answer(0, ref.is_base, "billing", SAMPLE_PROMPTS[0]))
    page.tabs.setCurrentWidget({"compare": page.compare, "blind": page.blind, "results": page.results,
                                "evaluate": page.evaluate, "chat": page.chat}[tab])
    page.results.refresh()
