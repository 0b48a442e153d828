from .search_optim_constructor import SearchOptimWrapperConstructor

__all__ = ['SearchOptimWrapperConstructor']
