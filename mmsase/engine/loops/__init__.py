from .bilevel_loop import BilevelEpochBasedTrainLoop

__all__ = ['BilevelEpochBasedTrainLoop']
