from . import algorithms, backbones, plugins, sase, search_space  # noqa: F401
