"""Writes the small demo dataset in examples/demo_bank/: 6 banking intents, 5 train seeds, 20 validation and
20 test texts per intent, made from hand-written templates and fillers (reproducible, no download).

    python -m pgkd.basics.demo_dataset
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

FILLERS = {
    "amount": ["50 dollars", "200 euros", "$1,000", "30 pounds", "500", "a hundred bucks", "75 euros"],
    "person": ["my sister", "my landlord", "a friend", "my son", "John", "my business partner", "my mom"],
    "when": ["today", "right now", "before Friday", "this morning", "tonight", "as soon as possible"],
    "account": ["checking account", "savings account", "joint account", "main account", "business account"],
    "city": ["Boston", "Lyon", "Leeds", "Madrid", "Denver", "Berlin", "Austin"],
    "loan": ["personal loan", "car loan", "mortgage", "student loan", "home equity loan", "business loan"],
    "place": ["the train", "a restaurant", "the airport", "the gym", "my office", "a taxi"],
}

LABELS = [
    {"name": "check_balance", "description": "asks how much money is in an account"},
    {"name": "transfer_money", "description": "wants to send money to someone"},
    {"name": "lost_card", "description": "card lost or stolen"},
    {"name": "change_address", "description": "wants to update the home address"},
    {"name": "loan_interest", "description": "asks about loan or mortgage interest rates"},
    {"name": "cancel_account", "description": "wants to close an account"},
]

TEMPLATES = {
    "check_balance": [
        "How much money is in my {account}?", "What is my current balance?", "Can you tell me the balance of my {account}?",
        "I want to check how much I have left {when}.", "Show me the balance on my {account} please.",
        "Do I have enough in my {account} to pay {amount}?", "What's left in my {account} after the last payment?",
        "Balance check for my {account}, please.", "How much can I still spend {when}?",
        "Is my {account} balance above {amount}?", "I need to see my available funds {when}.",
        "Could you check the money in my {account}?",
    ],
    "transfer_money": [
        "I want to send {amount} to {person}.", "How do I transfer {amount} to {person} {when}?",
        "Please move {amount} from my {account} to {person}.", "Can I wire {amount} to {person}?",
        "Send {amount} to {person} {when}.", "I need to pay {person} {amount} by bank transfer.",
        "Transfer {amount} from my {account} to my {account}.", "How can I send money to {person} abroad?",
        "Make a payment of {amount} to {person}.", "I'd like to transfer {amount} {when}.",
        "Set up a transfer to {person} for {amount}.", "Can you help me send {person} {amount}?",
    ],
    "lost_card": [
        "I lost my card at {place}.", "My card was stolen at {place}, please block it.",
        "I can't find my debit card anywhere.", "Someone took my wallet with my card at {place}.",
        "Please freeze my card, I think I left it at {place}.", "My credit card is missing since {when}.",
        "I need to report a stolen card {when}.", "How do I block a card I lost at {place}?",
        "My card got stolen, what should I do?", "I dropped my card somewhere near {place}.",
        "Cancel my card, it was lost at {place}.", "I think my card was stolen {when}.",
    ],
    "change_address": [
        "I moved to {city} and need to update my address.", "How do I change my home address {when}?",
        "Please update the address on my {account}.", "I have a new address in {city}, where do I enter it?",
        "My mailing address changed, can you fix it {when}?", "I need to change the address you send letters to.",
        "We moved house to {city}, update my address please.", "Can I change my address online {when}?",
        "Update my street address for my {account}.", "I want my statements sent to my new address in {city}.",
        "My address is wrong in your records for my {account}.", "How can I register a new home address {when}?",
    ],
    "loan_interest": [
        "What is the interest rate on a {loan}?", "How much interest would I pay on a {loan} of {amount}?",
        "What are your {loan} rates {when}?", "Is the interest on a {loan} fixed or variable?",
        "Can you lower the interest on my {loan}?", "What APR do you charge for a {loan}?",
        "How is interest calculated on my {loan}?", "I want to know the rate for borrowing {amount}.",
        "Did the interest on a {loan} go up {when}?", "What's the interest if I borrow {amount} for a year?",
        "Compare interest rates for a {loan}.", "Tell me the current rate on a {loan}.",
    ],
    "cancel_account": [
        "I want to close my {account}.", "How do I cancel my {account} {when}?",
        "Please shut down my {account}.", "I'd like to close all my accounts with you.",
        "Can I terminate my {account} online?", "Close my {account} and send me the remaining money.",
        "I am leaving the bank, cancel my {account}.", "What do I need to do to close my {account}?",
        "Delete my {account} please.", "I no longer want this {account}, close it {when}.",
        "End my membership and close my {account}.", "How long does it take to close an account?",
    ],
}

SPLITS = {"train": 5, "validation": 20, "test": 20}


def expand(template: str, rng: random.Random) -> str:
    text = template
    for slot, values in FILLERS.items():
        while "{" + slot + "}" in text:
            text = text.replace("{" + slot + "}", rng.choice(values), 1)
    return text


def texts_for(label: str, count: int, rng: random.Random) -> list[str]:
    """count distinct texts, cycling over the templates; fails loudly if the fillers cannot make enough."""
    seen: list[str] = []
    for attempt, template in enumerate(itertools.cycle(TEMPLATES[label])):
        text = expand(template, rng)
        if text not in seen:
            seen.append(text)
        if len(seen) >= count:
            return seen
        if attempt > 100 * count:
            raise RuntimeError(f"{label}: templates make only {len(seen)} distinct texts, {count} needed")
    return seen


def main(folder: Path = Path(__file__).resolve().parents[2] / "examples" / "demo_bank", seed: int = 7) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(json.dumps(LABELS, indent=1) + "\n")
    rows = {split: [] for split in SPLITS}
    for label in TEMPLATES:
        texts = texts_for(label, sum(SPLITS.values()), rng)
        rng.shuffle(texts)
        start = 0
        for split, n in SPLITS.items():
            rows[split] += [{"text": t, "label": label} for t in texts[start:start + n]]
            start += n
    for split, items in rows.items():
        with (folder / f"{split}.jsonl").open("w") as out:
            for row in items:
                out.write(json.dumps(row) + "\n")
    return folder


if __name__ == "__main__":
    print(main())
