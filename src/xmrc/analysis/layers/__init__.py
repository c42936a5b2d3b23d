"""The layer-wise stage: AttnLRP relevance and Major Relevance Depth, pooled hidden states and their
cross-lingual similarity, sample groups, tables and figures."""
