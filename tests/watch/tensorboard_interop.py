#!/usr/bin/env python3
"""Reads a TensorBoard log directory with TensorBoard's own reader (used by
tests/watch/test_event_file.cpp; needs `pip install tensorboard`).

  tensorboard_interop.py LOGDIR
      Loads the events files of LOGDIR with event_accumulator.EventAccumulator, keeping every
      event, and prints on one line what TensorBoard would show:
      {"scalars":    {tag: [[step, wall_time, value], ...]},
       "histograms": {tag: [[step, min, max, num, sum, sum_squares, bucket_total, buckets], ...]},
       "images":     {tag: [[step, width, height, png_bytes], ...]},
       "texts":      {tag: [[step, plugin_name, text, html], ...]}}
      where html is what the text plugin renders.

Exits non-zero, with the reason on stderr, on any failure.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.text import text_plugin
from tensorboard.util import tensor_util


def read(logdir):
    keep_all = {
        ea.SCALARS: 0,
        ea.HISTOGRAMS: 0,
        ea.COMPRESSED_HISTOGRAMS: 0,
        ea.IMAGES: 0,
        ea.AUDIO: 0,
        ea.TENSORS: 0,
    }
    acc = ea.EventAccumulator(logdir, size_guidance=keep_all)
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "histograms": {}, "images": {}, "texts": {}}
    for tag in tags[ea.SCALARS]:
        out["scalars"][tag] = [[e.step, e.wall_time, e.value] for e in acc.Scalars(tag)]
    for tag in tags[ea.HISTOGRAMS]:
        out["histograms"][tag] = [
            [e.step, h.min, h.max, h.num, h.sum, h.sum_squares, sum(h.bucket), len(h.bucket)]
            for e in acc.Histograms(tag)
            for h in [e.histogram_value]
        ]
    for tag in tags[ea.IMAGES]:
        out["images"][tag] = [
            [e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(tag)
        ]
    for tag in tags[ea.TENSORS]:
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        rows = []
        for e in acc.Tensors(tag):
            array = tensor_util.make_ndarray(e.tensor_proto)
            text = array.item().decode("utf-8") if array.size == 1 else None
            rows.append([e.step, plugin, text, text_plugin.text_array_to_html(array, enable_markdown=True)])
        out["texts"][tag] = rows
    return out


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(read(argv[1]), sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
