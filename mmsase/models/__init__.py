from . import algorithms, autola, backbones, ean, plugins, sase, search_space  # noqa: F401
