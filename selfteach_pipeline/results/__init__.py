"""The results tables' calculations: per-model rows aggregated over seeds (rows), intervals and paired
tests (significance), collapsed-model checks (collapse), the depth pick (depth_pick) and the plots
(plots). Used by the plugin's scoring tools and by selfteach_pipeline/report.py; imports neither torch
nor fairseq."""
