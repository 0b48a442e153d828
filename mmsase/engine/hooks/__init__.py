from .alpha_plot_hook import AlphaPlotHook
from .genotype_hook import GenotypeLoggerHook

__all__ = ['GenotypeLoggerHook', 'AlphaPlotHook']
