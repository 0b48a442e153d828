from mmsase.utils.checkpoint import install_checkpoint_safety
from . import hooks, loops, model_wrappers, optim_wrappers, optimizers  # noqa: F401

install_checkpoint_safety()
