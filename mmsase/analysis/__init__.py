"""Analysis helpers of the tools in ``tools/analysis/``: confidence intervals over seeds
(:mod:`.stats`), model size and FLOPs (:mod:`.complexity`), training runs over blocks and
seeds with result files (:mod:`.runs`) and the stability of repeated searches
(:mod:`.stability`). Importing the package is cheap; each module imports what it needs."""
