import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmsase module that registers something, and the safe-loading fixes.

    Args:
        init_default_scope: make ``mmsase`` the default registry scope (as mmdet's and
            mmyolo's helpers do). When another default scope is already current, a new
            ``mmsase-<timestamp>`` instance is made current, so both stay reachable.
    """
    import mmsase.datasets  # noqa: F401
    import mmsase.engine  # noqa: F401
    import mmsase.models  # noqa: F401
    from mmsase.utils.checkpoint import install_checkpoint_safety
    install_checkpoint_safety()

    if init_default_scope:
        never_created = DefaultScope.get_current_instance() is None \
            or not DefaultScope.check_instance_created('mmsase')
        if never_created:
            DefaultScope.get_instance('mmsase', scope_name='mmsase')
            return
        current_scope = DefaultScope.get_current_instance()
        if current_scope.scope_name != 'mmsase':
            warnings.warn('The current default scope '
                          f'"{current_scope.scope_name}" is not "mmsase"; '
                          '`register_all_modules` makes a new "mmsase" scope current.')
            new_instance_name = f'mmsase-{datetime.datetime.now()}'
            DefaultScope.get_instance(new_instance_name, scope_name='mmsase')
