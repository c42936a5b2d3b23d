"""The attribution stages: oracle retrieval (`oracle/`, Captum) and the layer-wise analysis (`layers/`: Major
Relevance Depth with AttnLRP, hidden-state similarity)."""
