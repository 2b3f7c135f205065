#include "watch/predictions.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/error.h"

namespace polytask::watch {

namespace {

std::string fixed(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

std::string class_text(int64_t index, const std::vector<std::string>& names) {
  return index >= 0 && size_t(index) < names.size() ? names[size_t(index)] : std::to_string(index);
}

HeadPrediction predict_head(const Task& task, const Tensor& out, const Tensor& truth,
                            const std::vector<std::string>& names) {
  HeadPrediction p;
  if (task.loss == LossKind::MeanSquaredError) {
    p.truth = fixed(truth.item(0), 4);
    p.predicted = fixed(out.item(0), 4);
    return p;
  }
  p.classifies = true;
  int64_t best = 0;
  if (task.loss == LossKind::BinaryCrossEntropy) {  // the first unit's sigmoid
    p.probability = 1 / (1 + std::exp(-out.item(0)));
    best = p.probability >= 0.5 ? 1 : 0;
    if (best == 0) p.probability = 1 - p.probability;
  } else {  // the softmax of the logits
    const int64_t k = out.numel();
    for (int64_t c = 1; c < k; ++c)
      if (out.item(c) > out.item(best)) best = c;
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += std::exp(out.item(c) - out.item(best));
    p.probability = 1 / sum;
  }
  // Class-index targets are int32; binary targets are floats in {0, 1}; one-hot rows name
  // their class by their largest entry.
  int64_t true_class = 0;
  if (truth.dtype() == DType::I32 || truth.numel() == 1) {
    true_class = int64_t(std::lround(truth.item(0)));
  } else {
    for (int64_t c = 1; c < truth.numel(); ++c)
      if (truth.item(c) > truth.item(true_class)) true_class = c;
  }
  p.truth = class_text(true_class, names);
  p.predicted = class_text(best, names);
  p.wrong = best != true_class;
  return p;
}

}  // namespace

std::vector<std::vector<HeadPrediction>> predict_rows(Network& net, const Dataset& data,
                                                      const std::vector<int64_t>& rows,
                                                      const ValueNames& names) {
  std::vector<std::vector<HeadPrediction>> out;
  const auto& g = net.model().graph();
  const int64_t cap = net.options().max_batch;
  for (size_t begin = 0; begin < rows.size(); begin += size_t(cap)) {
    const int64_t n = std::min<int64_t>(cap, int64_t(rows.size() - begin));
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const Tensor& src = data.input(g.values[g.inputs[i]].name);
      const Tensor& dst = net.input_buffer(i);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = rows[begin + size_t(r)];
        if (row < 0 || row >= data.size())
          fail("example ", row, " is outside the data's ", data.size(), " rows");
        dst.slice(r, r + 1).copy_from(src.slice(row, row + 1));
      }
    }
    // Inside a GPU fit, whose CUDA graphs read the step's scalars from device memory, those
    // scalars are staged for this forward as the fit's own evaluation does.
    if (net.staged_scalars()) net.stage_step();
    net.forward(n, /*training=*/false, /*with_losses=*/false);
    std::vector<Tensor> outputs;
    for (const auto& task : net.tasks())
      outputs.push_back(net.output(task.output_name()).slice(0, n).to(Device::CPU));
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = rows[begin + size_t(r)];
      std::vector<HeadPrediction> heads;
      for (size_t t = 0; t < net.tasks().size(); ++t) {
        const Task& task = net.tasks()[t];
        heads.push_back(predict_head(task, outputs[t].slice(r, r + 1),
                                     data.target(task.name).slice(row, row + 1),
                                     t < names.size() ? names[t] : std::vector<std::string>{}));
      }
      out.push_back(std::move(heads));
    }
  }
  return out;
}

std::vector<int64_t> wrong_rows(Network& net, const Dataset& data, int64_t count,
                                const ValueNames& names) {
  std::vector<int64_t> found;
  const int64_t cap = net.options().max_batch;
  for (int64_t begin = 0; begin < data.size() && int64_t(found.size()) < count; begin += cap) {
    std::vector<int64_t> rows;
    for (int64_t r = begin; r < std::min(begin + cap, data.size()); ++r) rows.push_back(r);
    const auto predictions = predict_rows(net, data, rows, names);
    for (size_t i = 0; i < rows.size() && int64_t(found.size()) < count; ++i)
      if (std::any_of(predictions[i].begin(), predictions[i].end(),
                      [](const HeadPrediction& p) { return p.wrong; }))
        found.push_back(rows[i]);
  }
  return found;
}

std::string image_input(const Network& net, const Dataset& data) {
  const auto& g = net.model().graph();
  for (const int input : g.inputs) {
    const std::string& name = g.values[size_t(input)].name;
    const Shape sample = data.input(name).shape().sample();
    if (sample.rank() == 3 && (sample[0] == 1 || sample[0] == 3)) return name;
  }
  return "";
}

std::vector<GridCell> prediction_cells(
    const Network& net, const Dataset& data, const std::string& image,
    const std::vector<int64_t>& rows, const std::vector<std::vector<HeadPrediction>>& predictions) {
  const Tensor& images = data.input(image);
  const Shape sample = images.shape().sample();
  if (sample.rank() != 3 || (sample[0] != 1 && sample[0] != 3) || images.dtype() != DType::F32)
    fail("input '", image, "' is ", images.describe(), ", not images (N, 1 or 3, H, W) of float32");
  std::vector<GridCell> cells;
  for (size_t i = 0; i < rows.size(); ++i) {
    GridCell cell;
    cell.channels = int(sample[0]);
    cell.height = int(sample[1]);
    cell.width = int(sample[2]);
    cell.pixels = images.slice(rows[i], rows[i] + 1).to_vector<float>();
    for (size_t t = 0; t < net.tasks().size(); ++t) {
      const HeadPrediction& p = predictions[i][t];
      cell.lines.push_back(
          {net.tasks()[t].name + ": " + p.truth + " / " + p.predicted, p.wrong, p.classifies});
    }
    cells.push_back(std::move(cell));
  }
  return cells;
}

}  // namespace polytask::watch
