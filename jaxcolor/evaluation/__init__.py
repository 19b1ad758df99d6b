"""Quality figures of a model on device: metrics, the two evaluators, baselines, FID.

metrics.py        L1, PSNR, SSIM per image (jittable)
fixed_batch.py    the fixed validation batch in TensorBoard during training
evaluator.py      the whole split (`SplitEvaluator`) and `python -m jaxcolor.evaluate`'s
                  `evaluate_checkpoint`
baselines.py      the trivial colorizers scored beside the model
hint_fidelity.py  `hint_error`: how closely the output keeps the user's colours
sample_sheet.py   rows of sketch | hints | output | target with their PSNR
inception.py, fid.py  FID from user-supplied Inception weights
"""
