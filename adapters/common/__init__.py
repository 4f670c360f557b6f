"""What every deep adapter shares with the official evaluation code (PROTOCOL.md sections 6-7.1).

- `click_maps`: image normalisation and DistMaps click disks (the network front end);
- `points`: clicks in the network frame and their B x 2M x 3 tensor encoding;
- `zoom_in`, `flip`: the evaluation-time transforms;
- `eval_predictor`: `EvalPredictor` (start/predict around any `forward(x, points)`), and the
  prepare / forward / map-back steps a batched engine can drive itself.
"""
