"""Writes support_tickets.jsonl: the demo task, triaging customer support
tickets of a small online shop into five categories.

Re-run it to regenerate the file (the output is fixed by the seed):
    python resources/demo/make_support_tickets.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = (
    "You triage customer support tickets for an online shop. Reply with exactly one "
    "category: billing, technical, account, shipping or feedback."
)

PRODUCTS = [
    "blender",
    "desk lamp",
    "running shoes",
    "coffee grinder",
    "backpack",
    "phone case",
    "yoga mat",
    "kettle",
    "headphones",
    "air purifier",
    "rain jacket",
    "cast iron pan",
    "bike light",
    "wall clock",
    "standing desk",
    "water bottle",
]
APPS = ["the app", "the website", "your iPhone app", "the Android app", "the checkout page", "the web shop"]
CARRIERS = ["the courier", "DHL", "UPS", "the postman", "the delivery driver", "FedEx"]
DAYS = ["two days", "a week", "ten days", "three weeks", "since Monday", "since last Friday"]
AMOUNTS = ["$19.99", "$42.50", "$7.00", "$129", "$64.30", "$15", "$88.90"]
OPENERS = ["", "", "", "Hi, ", "Hello, ", "Hi there. ", "Good morning. ", "Hey, "]
CLOSERS = ["", "", "", " Thanks.", " Please help.", " Thank you!", " Regards, Sam", " Can you sort this out?"]

TEMPLATES = {
    "billing": [
        "I was charged twice for my {product} order. Please refund one of the payments.",
        "My card was billed {amount} but the order total said less. Why the difference?",
        "I returned the {product} {days} ago and still have not received my refund.",
        "Can I get an invoice with my company's VAT number for the {product}?",
        "The discount code did not apply and I paid full price for the {product}.",
        "There is a charge of {amount} on my statement that I don't recognise.",
        "I cancelled my order but the payment of {amount} was still taken.",
        "Why was I charged a restocking fee on the {product} refund?",
        "My refund came back as {amount} instead of the full price.",
        "Please change the payment method on my open order, my card expired.",
        "I was billed for express shipping that I never selected.",
        "Do you offer paying in instalments for the {product}? The checkout only shows full payment.",
    ],
    "technical": [
        "{app} crashes every time I open my order history.",
        "I can't add the {product} to my cart, the button does nothing.",
        "{app} shows a blank white page after I log in.",
        "The checkout freezes at the payment step on {app}.",
        "Pictures of the {product} don't load on {app}, just grey boxes.",
        "I keep getting 'error 500' when I search for a {product}.",
        "{app} logs me out every few minutes.",
        "The size guide link for the {product} is broken.",
        "Push notifications from {app} stopped working after the last update.",
        "Tracking page on {app} is stuck loading forever.",
        "The promo banner covers the buy button on {app} so I can't tap it.",
        "{app} says 'something went wrong' when I try to leave a review.",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "Please delete my account and all my data.",
        "How do I change the email address on my account?",
        "My account is locked after too many login attempts.",
        "Someone else seems to have logged into my account, I see orders I didn't place.",
        "I want to merge my two accounts, I signed up twice by mistake.",
        "How can I turn on two-factor authentication for my login?",
        "I can't update my phone number in my profile, it says invalid.",
        "Please unsubscribe me from the newsletter, the link in the email doesn't work for my account.",
        "My loyalty points disappeared from my account.",
        "I changed my name and need it updated on my profile.",
        "The verification code for signing in never comes by SMS.",
    ],
    "shipping": [
        "My {product} still hasn't arrived, it's been {days}.",
        "The tracking number for my {product} doesn't work.",
        "{carrier} left my parcel at the wrong address.",
        "The {product} arrived damaged, the box was crushed.",
        "Can I change the delivery address for my {product} order? It hasn't shipped yet.",
        "Do you ship the {product} to Canada?",
        "Tracking says delivered but there is no parcel at my door.",
        "I received someone else's order instead of my {product}.",
        "How long does standard delivery take for the {product}?",
        "{carrier} says the package is held at customs, what do I do?",
        "Only half of my order came, the {product} is missing from the box.",
        "My parcel has been stuck 'in transit' for {days}.",
    ],
    "feedback": [
        "Just wanted to say the {product} is fantastic, best purchase this year.",
        "The {product} is nice but the colour is darker than in the photos.",
        "Your customer service was really helpful last week, thank you!",
        "Suggestion: please add a dark mode to {app}.",
        "The {product} works well but the instructions were confusing.",
        "I love the new packaging, much less plastic. Keep it up.",
        "It would be great if you sold replacement parts for the {product}.",
        "Quality of the {product} is lower than I expected for the price.",
        "Five stars for the {product}, would recommend to friends.",
        "Please bring back the old design of {app}, the new one is harder to use.",
        "The {product} is okay, nothing special. Average.",
        "Great shop, fast and friendly. I will order again.",
    ],
}


def make(seed: int = 7, per_category: int = 60) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    for category, templates in TEMPLATES.items():
        seen: set[str] = set()
        while len(seen) < per_category:
            text = rng.choice(templates).format(
                product=rng.choice(PRODUCTS),
                app=rng.choice(APPS),
                carrier=rng.choice(CARRIERS),
                days=rng.choice(DAYS),
                amount=rng.choice(AMOUNTS),
            )
            text = rng.choice(OPENERS) + text[0].upper() + text[1:] + rng.choice(CLOSERS)
            if rng.random() < 0.15:
                text = text.lower()
            if text in seen:
                continue
            seen.add(text)
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": text},
                        {"role": "assistant", "content": category},
                    ],
                    "label": category,
                }
            )
    rng.shuffle(rows)
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("support_tickets.jsonl")
    with open(out, "w", encoding="utf-8") as fh:
        for row in make():
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
