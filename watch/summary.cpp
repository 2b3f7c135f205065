#include "watch/summary.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "kernels/error.h"
#include "watch/protobuf_wire.h"

namespace polytask::watch {

namespace {

using wire::Encoder;

// Event
constexpr int kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5;
// Summary, Summary.Value
constexpr int kSummaryValue = 1;
constexpr int kValueTag = 1, kValueSimple = 2, kValueImage = 4, kValueHisto = 5, kValueTensor = 8,
              kValueMetadata = 9;
// Summary.Image
constexpr int kImageHeight = 1, kImageWidth = 2, kImageColorspace = 3, kImageEncoded = 4;
// HistogramProto
constexpr int kHistoMin = 1, kHistoMax = 2, kHistoNum = 3, kHistoSum = 4, kHistoSumSquares = 5,
              kHistoBucketLimit = 6, kHistoBucket = 7;
// SummaryMetadata, SummaryMetadata.PluginData
constexpr int kMetadataPluginData = 1, kPluginName = 1;
// TensorProto, TensorShapeProto
constexpr int kTensorDtype = 1, kTensorShape = 2, kTensorStringVal = 8;
constexpr int kDtString = 7;

const std::vector<double>& default_bucket_limits() {
  static const std::vector<double> limits = [] {
    std::vector<double> positive;
    for (double v = 1e-12; v < 1e20; v *= 1.1) positive.push_back(v);
    positive.push_back(DBL_MAX);
    std::vector<double> all;
    for (auto it = positive.rbegin(); it != positive.rend(); ++it) all.push_back(-*it);
    all.push_back(0.0);
    all.insert(all.end(), positive.begin(), positive.end());
    return all;
  }();
  return limits;
}

// An empty tag would read back like an Event without a summary.
void require_tag(const std::string& tag) {
  if (tag.empty()) fail("a summary needs a non-empty tag");
}

std::string tagged(const std::string& tag, int field, const std::string& message) {
  require_tag(tag);
  return Encoder().bytes(kValueTag, tag).bytes(field, message).str();
}

}  // namespace

Histogram make_histogram(const float* values, size_t n) {
  const std::vector<double>& limits = default_bucket_limits();
  std::vector<double> counts(limits.size(), 0.0);
  Histogram h;
  h.min = DBL_MAX;
  h.max = -DBL_MAX;
  for (size_t i = 0; i < n; ++i) {
    const double v = values[i];
    if (!std::isfinite(v)) continue;
    const size_t b = std::upper_bound(limits.begin(), limits.end(), v) - limits.begin();
    counts[std::min(b, limits.size() - 1)] += 1;
    h.min = std::min(h.min, v);
    h.max = std::max(h.max, v);
    h.num += 1;
    h.sum += v;
    h.sum_squares += v * v;
  }
  if (h.num == 0) {
    h.min = h.max = 0;  // TF leaves ±DBL_MAX here, which TensorBoard then draws as the range
    h.bucket_limit = {DBL_MAX};
    h.bucket = {0.0};
    return h;
  }
  for (size_t i = 0; i < limits.size();) {
    double end = limits[i], count = counts[i];
    ++i;
    if (count == 0)
      while (i < limits.size() && counts[i] == 0) end = limits[i++];
    h.bucket_limit.push_back(end);
    h.bucket.push_back(count);
  }
  return h;
}

std::string scalar_value(const std::string& tag, float value) {
  require_tag(tag);
  return Encoder().bytes(kValueTag, tag).float_(kValueSimple, value).str();
}

std::string histogram_value(const std::string& tag, const Histogram& h) {
  Encoder histo;
  histo.double_(kHistoMin, h.min)
      .double_(kHistoMax, h.max)
      .double_(kHistoNum, h.num)
      .double_(kHistoSum, h.sum)
      .double_(kHistoSumSquares, h.sum_squares)
      .packed_doubles(kHistoBucketLimit, h.bucket_limit)
      .packed_doubles(kHistoBucket, h.bucket);
  return tagged(tag, kValueHisto, histo.str());
}

std::string image_value(const std::string& tag, const std::string& png, int height, int width,
                        int channels) {
  if (channels != 1 && channels != 3 && channels != 4)
    fail("image summary ", tag, ": ", channels, " channels (1, 3 or 4 expected)");
  if (height <= 0 || width <= 0)
    fail("image summary ", tag, ": size ", width, "x", height, " is not positive");
  Encoder image;
  image.int64(kImageHeight, height)
      .int64(kImageWidth, width)
      .int64(kImageColorspace, channels)
      .bytes(kImageEncoded, png);
  return tagged(tag, kValueImage, image.str());
}

// The tensor before the metadata: fields in number order, as protoc writes them (the tests
// compare our bytes with those of Python's protobuf).
std::string text_value(const std::string& tag, const std::string& markdown) {
  require_tag(tag);
  const std::string plugin_data = Encoder().bytes(kPluginName, "text").str();
  const std::string metadata = Encoder().bytes(kMetadataPluginData, plugin_data).str();
  Encoder tensor;
  tensor.int64(kTensorDtype, kDtString)
      .bytes(kTensorShape, "")  // no dims: a scalar
      .bytes(kTensorStringVal, markdown);
  return Encoder()
      .bytes(kValueTag, tag)
      .bytes(kValueTensor, tensor.str())
      .bytes(kValueMetadata, metadata)
      .str();
}

std::string summary_event(double wall_time, int64_t step, const std::vector<std::string>& values) {
  Encoder summary;
  for (const std::string& v : values) summary.bytes(kSummaryValue, v);
  Encoder event;
  event.double_(kEventWallTime, wall_time).int64(kEventStep, step);
  if (!values.empty()) event.bytes(kEventSummary, summary.str());
  return event.str();
}

std::string file_version_event(double wall_time, const std::string& file_version) {
  return Encoder().double_(kEventWallTime, wall_time).bytes(kEventFileVersion, file_version).str();
}

}  // namespace polytask::watch
