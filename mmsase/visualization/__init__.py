"""Figures of mmsase models: Grad-CAM maps (:mod:`.cam`) and the searched block's DAG
(:mod:`.genotype_diagram`). Import the submodules directly; this package imports nothing
heavy itself."""
