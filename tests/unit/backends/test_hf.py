import pandas as pd
import pytest

from helpers import ROOT
from xmrc import LANGUAGES, data
from xmrc.backends.hf import HFBackend
from xmrc.exceptions import XmrcError
from xmrc.generation import GENERATION_COLUMNS, run_generation
from xmrc.io import read_parquet
from xmrc.prompts import build_prompt_table, hf_chat_template

SUBSET = ROOT / "data/xquad_subset"
DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]


@pytest.fixture(scope="module")
def table():
    return data.prepare(data.load_local(SUBSET, LANGUAGES), LANGUAGES)[0]


@pytest.fixture(scope="module")
def base_backend(tiny_models):
    return HFBackend(str(tiny_models["llama-base"]), dtype="float32", batch_size=4, progress=False)


def test_batched_generation_matches_one_by_one(base_backend, table):
    prompts = build_prompt_table(table, ["en", "zh", "th"], 0, "v1", DEMOS, None, max_items=2)["prompt"].tolist()
    batched = base_backend.generate(prompts, 6, templated=False)
    single = [base_backend.generate([p], 6, templated=False)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in single]
    lengths = [len(base_backend.tokenizer(p)["input_ids"]) for p in prompts]
    assert [g.prompt_tokens for g in batched] == lengths  # BOS added for raw prompts


def test_templated_prompts_get_no_second_bos(tiny_models, table):
    backend = HFBackend(str(tiny_models["llama-chat"]), dtype="float32", batch_size=2, progress=False)
    prompts = build_prompt_table(table, ["en"], 0, "v1", DEMOS, hf_chat_template(backend.tokenizer), max_items=1)
    text = prompts["prompt"].iloc[0]
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(backend.tokenizer.bos_token_id) == 1
    assert backend.generate([text], 3, templated=True)[0].prompt_tokens == len(ids)


def test_stop_when_ends_a_sequence_early(base_backend):
    full = base_backend.generate(["Context: a\nQuestion: b\nAnswer:"], 10, templated=False)[0]
    assert full.output_tokens == 10
    stopped = base_backend.generate(
        ["Context: a\nQuestion: b\nAnswer:"], 10, templated=False, stop_when=lambda text: len(text) > 0
    )[0]
    assert stopped.output_tokens == 1 and full.text.startswith(stopped.text)


def test_missing_weights_is_one_line(tmp_path):
    with pytest.raises(XmrcError, match="could not load the tokenizer"):
        HFBackend(str(tmp_path / "absent"), dtype="float32")


class FailingAfter:
    """Delegates to a real backend, then dies like a killed job after `calls` batches."""

    name = "failing-after"

    def __init__(self, backend, calls):
        self.backend, self.calls, self.prompts_seen = backend, calls, 0

    def describe(self):
        return self.backend.describe()

    def generate(self, prompts, *args, **kwargs):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        self.prompts_seen += len(prompts)
        return self.backend.generate(prompts, *args, **kwargs)


def test_generation_resumes_from_shards(base_backend, table, tmp_path):
    prompts = build_prompt_table(table, ["en", "de"], 0, "v1", DEMOS, None, max_items=5)
    options = dict(model="Tiny", shots=0, prompt_format="v1", max_new_tokens=4, chunk_size=4, progress=False)
    reference = run_generation(prompts, base_backend, tmp_path / "ref.parquet", **options)
    assert list(reference.columns) == GENERATION_COLUMNS and len(reference) == len(prompts)

    output = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_generation(prompts, FailingAfter(base_backend, 2), output, **options)
    assert not output.exists()
    assert len(list((tmp_path / "out.parquet.shards").glob("shard-*.parquet"))) == 2
    resumed = FailingAfter(base_backend, 99)
    result = run_generation(prompts, resumed, output, **options)
    assert resumed.prompts_seen == len(prompts) - 8  # the two finished shards were not redone
    pd.testing.assert_frame_equal(result, reference)
    pd.testing.assert_frame_equal(read_parquet(output), reference)
    assert not (tmp_path / "out.parquet.shards").exists()
