"""The PULSAR-Net family: cleaning jammed full-waveform LiDAR (simulator, model, extraction, metrics)."""
