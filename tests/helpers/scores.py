"""Item-score tables (what `aggregate --out-items` writes) built by hand, for the interval tests."""

import numpy as np
import pandas as pd


def item_frame(model, shots, fmt, directions, ids, f1, em=None):
    f1 = np.asarray(f1, dtype=float)
    em = f1 if em is None else np.asarray(em, dtype=float)
    frames = [
        pd.DataFrame(
            {
                "model": model,
                "shots": shots,
                "prompt_format": fmt,
                "context_lang": c,
                "question_lang": q,
                "id": list(ids),
                "f1": f1,
                "em": em,
            }
        )
        for c, q in directions
    ]
    return pd.concat(frames, ignore_index=True)
