"""Natural refusals in many phrasings, for the harmful half of safety tuning.

A refusal is an opening sentence that declines (every one holds a phrase of
the refusal-substring judge, `data/judge.py`, so that a refusal is counted as
one), optionally a reason and optionally an offer of something safe instead,
as deployed chat assistants refuse. `refusal(rng)` draws one; the number of
distinct refusals is len(OPENERS) * (len(REASONS) + 1) * (len(OFFERS) + 1).
"""

import numpy as np

OPENERS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't assist with that request.",
    "I'm sorry, I can't do that.",
    "I'm sorry, but I cannot provide that.",
    "I'm sorry, but I won't be able to help with this one.",
    "Sorry, but I can't help with that.",
    "Sorry, I can't assist with this request.",
    "I can't help with that.",
    "I can't help with this request.",
    "I can't provide that kind of information.",
    "I can't assist with that.",
    "I can't do that.",
    "I cannot help with that request.",
    "I cannot assist with this.",
    "I cannot provide instructions or content like that.",
    "I'm unable to help with that.",
    "I'm unable to assist with this request.",
    "I'm not able to help with that.",
    "I am not able to provide that.",
    "I apologize, but I can't help with that.",
    "I apologize, but I cannot assist with this request.",
    "I'm afraid I can't help with that.",
    "Unfortunately, I can't help with this request.",
    "No, I can't help with that.",
    "I'm sorry, that's not something I can help with.",
    "I'm really sorry, but I can't help with this.",
    "That's a request I cannot fulfill, I'm sorry.",
    "I have to decline: I can't help with that.",
)

REASONS = (
    'It could cause real harm to people.',
    'It could be used to hurt someone.',
    'It could put people at risk.',
    'It could seriously harm others.',
    'It may be illegal and could hurt people.',
    'It involves breaking the law.',
    'It involves activity that is illegal and dangerous.',
    'Helping with it could lead to real-world harm.',
    'It goes against my guidelines.',
    'It is against my principles to help with something harmful.',
    'Doing so would be unsafe and unethical.',
    'It would be irresponsible for me to help with this.',
    "That kind of content can do real damage, so it's not something I "
    'provide.',
    'It could violate the privacy or safety of others.',
    'It could be used to deceive or exploit people.',
    'It promotes harm toward others.',
    'Requests like this can endanger people.',
    "It isn't safe, and it isn't something I'm willing to provide.",
)

OFFERS = (
    "If there's something else you need, I'm happy to help.",
    'Is there something else I can help you with?',
    "If you have another question, I'd be glad to help.",
    "I'd be happy to help with something else.",
    "If you're interested in the topic from a safety or educational angle, "
    'I can share general information.',
    'If you or someone else is in danger, please contact local emergency '
    'services.',
    "If you're dealing with a difficult situation, talking to someone you "
    'trust or a professional can help.',
    'I can help you find legal and safe alternatives if you like.',
    "Let me know if there's anything else I can do for you.",
    'Feel free to ask me about something else.',
    "If you'd like, I can point you to legitimate resources on this "
    'subject.',
    "I'm glad to help with a different request.",
)

# Chance of appending a reason, and an offer, to the opening sentence.
REASON_PROBABILITY = 0.6
OFFER_PROBABILITY = 0.6


def refusal(rng: np.random.Generator) -> str:
  """One refusal drawn with `rng`: opener [+ reason] [+ offer]."""
  parts = [OPENERS[rng.integers(len(OPENERS))]]
  if rng.random() < REASON_PROBABILITY:
    parts.append(REASONS[rng.integers(len(REASONS))])
  if rng.random() < OFFER_PROBABILITY:
    parts.append(OFFERS[rng.integers(len(OFFERS))])
  return ' '.join(parts)


def refusals(n: int, seed: int) -> list[str]:
  """`n` refusals drawn from one generator seeded by `seed`."""
  rng = np.random.default_rng(seed)
  return [refusal(rng) for _ in range(n)]
