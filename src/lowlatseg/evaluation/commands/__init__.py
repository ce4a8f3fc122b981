"""The evaluation commands, each a function from a frozen options dataclass to a result dataclass.

A command computes and returns: it prints nothing and writes no file (progress bars and
warnings on stderr aside). :mod:`lowlatseg.evaluation.reporting` turns a result into the
printed table, the JSON file (``result.to_json()``) and the plots; the CLI maps flags to options.

* :mod:`~.image`: ``eval image`` (per-frame network on a labelled split);
* :mod:`~.video`: ``eval video`` (labelled clip) and ``eval agreement`` (unlabelled video);
* :mod:`~.scheduling`: ``eval scheduling`` on a labelled clip;
  :mod:`~.scheduling_video`: ``eval scheduling --video`` on long unlabelled video;
* :mod:`~.tradeoff`: ``eval tradeoff``;
* :mod:`~.bench`: ``bench`` (live latency of every mode) and ``bench split``;
* :mod:`~.loading`: what they share (models, clips, label-set checks).
"""
