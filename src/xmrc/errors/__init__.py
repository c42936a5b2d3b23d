"""Error typing of wrong answers (the paper's Tables 2 right half, 7, 8, 9a-c).

Steps, one module each, one file between steps (all keyed by `KEYS`):
  wrong          W: the wrong answers of one shots setting and scenario, each model in its chosen format
  language       Lingua on reference and prediction: language errors, undecidable text
  judge          an LLM judge's verdict per wrong answer (label_scoring: its HF next-token scorer)
  rates          per-direction counts and rates, the paper-shaped tables, rule/judge blank agreement
  figure         stacked bars of error types per model
"""

# One wrong answer (a generation of one model, setting and direction) is identified by these columns.
KEYS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]
