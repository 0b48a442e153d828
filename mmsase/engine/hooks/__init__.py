from .alpha_plot_hook import AlphaPlotHook
from .connection_code_hook import RandomConnectionCodeHook
from .genotype_hook import GenotypeLoggerHook
from .sem_decision_hook import SEMDecisionHook

__all__ = ['GenotypeLoggerHook', 'AlphaPlotHook', 'RandomConnectionCodeHook', 'SEMDecisionHook']
