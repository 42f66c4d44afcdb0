"""Golden data for hardware and framework verification: an atomic writer (npy/npz, hex, bin,
C header) with a self-checksummed manifest, a verifying reader, and a first-divergence compare."""

from npquant.golden.formats import hex_lines, read_bin, read_hex, write_bin, write_hex
from npquant.golden.reader import Golden, GoldenDataError, load_golden, verify_golden
from npquant.golden.writer import FORMATS, golden_tensors, write_golden, write_tensors

__all__ = ["FORMATS", "Golden", "GoldenDataError", "golden_tensors", "hex_lines", "load_golden",
           "read_bin", "read_hex", "verify_golden", "write_bin", "write_golden", "write_hex",
           "write_tensors"]
