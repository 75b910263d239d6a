"""Results: per-model rows aggregated over seeds (rows), intervals and paired tests (significance),
collapsed-model checks (collapse). Used by the scoring tools and cli/report; registers nothing."""
