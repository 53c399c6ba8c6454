"""Calibration sets and quantizers (QDQ INT8 for every backend, FP16 with fp32 I/O).

The accuracy gate, sensitivity analysis and NNCF path build on these (DESIGN.md section 5).
"""
