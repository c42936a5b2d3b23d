"""The paper's claims a run can test, each declared before it sees data.

A `Finding` quotes the paper's words, names the population the paper makes the claim for, and fixes the
statistic θ, its unit of resampling and the claim on θ (`xmrc.paper.verdicts`: Above, Below, Within with its
margin). Margins are the paper's own where it states one (a published rate it calls low or minor, a gap it
calls close); where it states none they are declared here, with the reason, and never read off our data.
`xmrc.paper.measures` computes θ and its paragraph-bootstrap draws for each.

The similarity shapes are tested on D(en,x) = mean_k cos(e_k, x_k) − mean_{i<j} cos(x_i, x_j) of mean-centred
hidden states: S's numerator minus its denominator (D > 0 exactly where S > 1). Raw cosines saturate near 1
(anisotropy), and the centred ratio is undefined where its denominator reaches 0, which it does in real runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from xmrc.paper.published import published_table
from xmrc.paper.verdicts import Above, Below, Within

BASE, POST_TRAINED, ALL = "base", "post-trained", "all"
POPULATIONS = (BASE, POST_TRAINED)
PARAGRAPHS = "XQuAD paragraph (all its items and languages together; paired across the settings compared)"

BASE_MODELS = [
    "LLaMA-3.1-8B",
    "LLaMA-3.1-70B",
    "Mistral-V0.3-7B",
    "Qwen-2.5-7B",
    "Qwen-2.5-72B",
    "Gemma-2-9B",
    "DeepSeek-V2-Lite-16B",
]


@dataclass(frozen=True)
class Finding:
    key: str
    name: str
    paper: str  # the paper's words
    population: str  # base | post-trained | all: whom the paper makes the claim for
    statistic: str  # θ in words
    claim: object  # Above | Below | Within
    unit: str = PARAGRAPHS

    def applies_to(self, population: str) -> bool:
        return self.population in (ALL, population)

    @property
    def criterion(self) -> str:
        return self.claim.describe("θ")


def _paper_max(column: str, models) -> float:
    table = published_table("table2_2shot_summary")
    return float(table.loc[[m for m in models if m in table.index], column].max())


def _post_trained() -> list[str]:
    return [m for m in published_table("table2_2shot_summary").index if m not in BASE_MODELS]


def _oracle_gap() -> float:
    oracle = published_table("table3_oracle")
    return float((oracle["step en-en"] - oracle["step en-x"]).abs().max())


# The margins, each from the paper where it gives one.
LANGUAGE_MARGIN = _paper_max("mean language", _post_trained())  # the largest post-trained rate it calls low
GENERATION_MARGIN = _paper_max("mean generation", BASE_MODELS)  # the largest base-model rate it calls minor
CLOSE_MARGIN = 10.0  # points: the paper calls step gaps up to _oracle_gap() (7.45) close; we allow 10
PHASE_FRACTION = 0.1  # "substantially": a tenth of the explained layers (the paper's Fig. 3: ~8 of 31)
ARC_WINDOW = (0.2, 0.45)  # relative depths around 1/3, the arc's peak; neither end point inside
DECLINE_FROM = 0.75  # relative depth where "the last few layers" begin; the last layer is the other end

FINDINGS = {
    f.key: f
    for f in (
        Finding(
            "gap",
            "cross-lingual gap: en-x below en-en",
            "the actual performance, where en-en is better than en-x (§4.2.2; Table 2: en-x / en-en < 1 for "
            "every main-list model)",
            ALL,
            "en-en F1 − mean en-x F1 per item (2-shot, the chosen format)",
            Above(0.0),
        ),
        Finding(
            "monolingual",
            "base models: monolingual x-x above cross-lingual en-x",
            "Table 2: mean x-x F1 above mean en-x F1 for all 7 base models (§4.1: 'the difference in model "
            "performance between cross-lingual and monolingual settings')",
            BASE,
            "mean x-x F1 − mean en-x F1 per item (2-shot, the chosen format)",
            Above(0.0),
        ),
        Finding(
            "shots",
            "2-shot above 0-shot (mean en-x F1)",
            "'most of the tested LLMs perform better in the 2-shot setting' (§3)",
            ALL,
            "2-shot − 0-shot mean en-x F1 per item (each in its chosen format)",
            Above(0.0),
        ),
        Finding(
            "language",
            "language errors: low, not a bottleneck",
            "'since the error rate is low for all the post-trained models, it cannot be viewed as a bottleneck' "
            f"(§4.2.1); the largest post-trained rate in Table 2 is {LANGUAGE_MARGIN:.2f}%",
            POST_TRAINED,
            "language errors, % of the wrong en-x answers",
            Below(LANGUAGE_MARGIN),
        ),
        Finding(
            "generation",
            "generation failures (blank, gibberish, refusal): minor",
            "'the generation failure rates are minor for most models, regardless of size and post-training' "
            f"(§4.2.1); the largest base-model rate in Table 2 is {GENERATION_MARGIN:.2f}%",
            ALL,
            "generation failures, % of the wrong en-x answers (by a judge that passes the calibration gate)",
            Below(GENERATION_MARGIN),
        ),
        Finding(
            "oracle_chance",
            "oracle finds the answer's sentence above chance (en-x)",
            "'the models have actually obtained the ability to locate the correct answer' (§4.2.2, Table 3)",
            ALL,
            "oracle step accuracy − chance (mean 1 / sentences of the same items), points",
            Above(0.0),
        ),
        Finding(
            "oracle_answers",
            "oracle above the actual answers (en-x)",
            "oracle performance is 'quite different from the actual performance ... the performances are not "
            "that high' (§4.2.2: Table 3 above Table 2)",
            ALL,
            "oracle step accuracy − F1 on the same items, points",
            Above(0.0),
        ),
        Finding(
            "oracle_close",
            "oracle en-x close to en-en",
            "'the estimated oracle performance for en-x is close to en-en for all the LLaMA models' (§4.2.2; "
            f"Table 3 gaps up to {_oracle_gap():.2f} points)",
            ALL,
            "oracle step accuracy en-x − en-en on the same items, points",
            Within(CLOSE_MARGIN),
        ),
        Finding(
            "phases",
            "two phases: question MRD substantially below context MRD",
            "'the mean question MRD is significantly and substantially lower than the mean context MRD in all "
            "tested languages and across the LLaMA models' (§5.1)",
            ALL,
            "context MRD − question MRD per prompt, as a fraction of the explained layers",
            Above(PHASE_FRACTION),
        ),
        Finding(
            "question_arc",
            "question S(en,x): an arc peaking near a third of the depth",
            "'For question representations, they all show a shared arc-shaped trend, where the highest "
            "similarity to English appears at the relative depth of around 1/3' (§5.2)",
            ALL,
            f"centred D(en,x) of questions (S's numerator − denominator), mean over relative depths "
            f"{ARC_WINDOW[0]}–{ARC_WINDOW[1]} minus the larger of the embedding layer's and the last layer's",
            Above(0.0),
        ),
        Finding(
            "last_decline",
            "base model: last-token S(en,x) falls in the last layers",
            "'the last-input-token similarity of base models experience severe and consistent decline in the "
            "last few layers, across all non-English languages' (§6, Figs. 7a, 9a)",
            BASE,
            f"centred D(en,x) of the last input token (S's numerator − denominator) at relative depth "
            f"{DECLINE_FROM} minus at the last layer",
            Above(0.0),
        ),
        Finding(
            "qt_lora",
            "question-translation LoRA raises en-x F1",
            "'the models trained on multilingual translation data outperform the original model obviously' "
            "(second paper, §4)",
            ALL,
            "tuned − base mean en-x F1 per held-out item (2-shot, each in its chosen format)",
            Above(0.0),
        ),
    )
}
