"""Bridges that run one integer op in a real framework (TFLite, ONNX Runtime, PyTorch) with
exact, caller-given quantization parameters and return the framework's integer output.

The frameworks are optional (``pip install -e .[interop]``) and imported lazily: importing
``npquant.interop.tflite`` etc. works without them; calling a bridge raises ImportError naming
the extra.
"""
