"""The paper's published numbers beside ours: which of our tables holds each published cell (`published`), the
cell-by-cell comparison and its summary (`compare`), the scatter figure (`figure`)."""
