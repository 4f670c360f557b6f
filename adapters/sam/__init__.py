"""SAM-family models (Segment Anything, SAM 2, SAM 2.1) through the official PyPI packages:
`models` (registry entries, no torch), `official` (importing the packages and building their
networks, with or without torchvision), `checkpoint` (official files: safe read, variant check,
strict load), `transforms` (the official predictors' image/point transforms, torchvision-free),
`backends` (encoder and decoder calls), `predictor` (prompt protocol, registry factories)."""
