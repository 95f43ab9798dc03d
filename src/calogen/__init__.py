"""calogen: fast simulation of calorimeter responses with generative neural networks.

Layers (each depends only on the ones listed before it): ``geometry``, ``physics``, ``data``,
``models``, ``train``, ``metrics``, ``report``, ``cli``. See ``shared/DESIGN.md``.
"""

__version__ = "0.1.0"
