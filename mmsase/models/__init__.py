from . import algorithms, backbones, ean, plugins, sase, search_space  # noqa: F401
