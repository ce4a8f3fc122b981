"""Feature propagation from a keyframe to the current frame (one class per method)."""
