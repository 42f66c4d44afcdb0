"""npquant: neural-network quantization written out in full, in NumPy and numba.

The data flow is float model -> observers -> quantization parameters -> integer model -> golden
data; every integer the package produces is reproducible bit for bit and explained by a named
requantization profile (see ``npquant.profiles`` and docs/).
"""

__version__ = "0.1.0"
