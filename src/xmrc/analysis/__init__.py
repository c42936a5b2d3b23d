"""Attribution and layer-wise analyses: oracle retrieval (Captum), Major Relevance Depth (AttnLRP), hidden-state similarity."""
