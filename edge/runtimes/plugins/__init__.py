"""Backend lowerings of our portable attention node (ORT graph pass; OpenVINO and TensorRT follow)."""
