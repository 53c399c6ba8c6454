"""The NativeCross family: camera-LiDAR extrinsic refinement by cross-attention (card, torch modules,
synthetic rigs, KITTI samples, training)."""
