// The messages of a TensorBoard events file (tensorboard/compat/proto: event.proto,
// summary.proto, tensor.proto), encoded with watch/protobuf_wire.h. Field numbers checked
// against the descriptors of the tensorboard 2.21 Python package.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace polytask::watch {

// HistogramProto. bucket[i] counts the values v with bucket_limit[i-1] <= v < bucket_limit[i]
// (the first bucket's lower edge is -DBL_MAX).
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit, bucket;
};

// TensorFlow's default histogram (tensorflow/core/lib/histogram/histogram.cc) of the finite
// values among `n`: limits ±1e-12·1.1^k up to 1e20, 0 and ±DBL_MAX; like TF's EncodeToProto,
// each run of empty buckets becomes one empty bucket ending at the run's last limit, which keeps
// every non-empty bucket's edges where TensorBoard expects them. With no finite value: num 0,
// min = max = 0 and one empty bucket up to DBL_MAX.
Histogram make_histogram(const float* values, size_t n);

// One Summary.Value each, encoded.
std::string scalar_value(const std::string& tag, float value);
std::string histogram_value(const std::string& tag, const Histogram& histogram);
// `png`: a PNG file; channels 1 (grey), 3 (RGB) or 4 (RGBA): the Image's colorspace.
std::string image_value(const std::string& tag, const std::string& png, int height, int width,
                        int channels);
// The text plugin's form: a string tensor of shape [] with plugin_name "text".
std::string text_value(const std::string& tag, const std::string& markdown);

// An Event with a Summary of `values` (encoded Summary.Values; none: no summary field).
std::string summary_event(double wall_time, int64_t step, const std::vector<std::string>& values);
// The first Event of a file: wall_time and file_version.
std::string file_version_event(double wall_time, const std::string& file_version);

}  // namespace polytask::watch
