"""Magenta's arbitrary-style network (Ghiasi et al. 2017): an Inception-v3 style embedding.

* :mod:`.network`: the style prediction network and the embedding-conditioned transformer;
  its style trunk is Inception-v3 (:mod:`.inception`) or, for the mobile model, MobileNetV2
  (:mod:`.mobilenet`).
* :mod:`.family`: :func:`nst_tf.stylize` with style images, embeddings, identity interpolation
  (checkpoints: :mod:`magenta_compat.arbitrary`; the mobile model's TF Lite / ONNX files:
  :mod:`magenta_compat.mobile`).
* :mod:`.hub`: TF-Hub modules with the signature of Magenta's, loaded and exported.
* :mod:`.recipe` (``nst-train --mode=arbitrary``, also ``--predictor=mobilenet_v2``) and
  :mod:`.distill` (``--mode=distill``): Magenta's training scripts; :mod:`.tflite`: the mobile
  model as Magenta's published TF Lite files.
"""
