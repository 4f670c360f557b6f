"""What every deep adapter shares with the official evaluation code (PROTOCOL.md sections 6-7.1).

- `click_maps`: image normalisation and DistMaps click disks (the network front end);
- `points`: clicks in the network frame and their B x 2M x 3 tensor encoding;
- `zoom_in`, `flip`: the evaluation-time transforms;
- `eval_predictor`: `EvalPredictor` (start/predict and the batched open_instance/predict_batch
  around any `forward(x, points)`), built from the prepare / forward / map-back steps;
- `layers`: the attention, MLP, patch-embedding and ResNet blocks once taken from timm;
- `factory`: option parsing, the predictor object and manifest records of the deep adapters.
"""
