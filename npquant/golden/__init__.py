"""Golden data for hardware and framework verification: writer, reader, hex/bin formats."""

from npquant.golden.formats import hex_lines, read_bin, read_hex, write_bin, write_hex
from npquant.golden.reader import Golden, GoldenDataError, load_golden
from npquant.golden.writer import write_golden

__all__ = ["Golden", "GoldenDataError", "hex_lines", "load_golden", "read_bin", "read_hex",
           "write_bin", "write_golden", "write_hex"]
