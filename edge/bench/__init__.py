"""Latency/throughput harness: every artifact x backend x precision of a bundle, in one process."""
