"""The oracle stage: which context sentence an answer rests on (sentence ablation with Captum), its tables
and figure."""
