// A task: one head output of the model, its loss, its weight in the total loss, its metrics.
// Tasks are data, so presets and config files are lists of them and the trainer needs no
// per-workload code.
#pragma once

#include <string>
#include <vector>

namespace polytask {

enum class LossKind { SoftmaxCrossEntropy, BinaryCrossEntropy, MeanSquaredError };
enum class MetricKind { Accuracy, MeanAbsoluteError };
// What a task's targets are: class indices (I32, one per sample) or values shaped like the
// output (one-hot rows for cross-entropy, regression targets for MSE, {0,1} for BCE).
enum class TargetKind { ClassIndex, Values };

const char* loss_name(LossKind k);     // "softmax_cross_entropy", ...
const char* metric_name(MetricKind k);  // "accuracy", "mae"
LossKind parse_loss(const std::string& text);

struct Task {
  std::string name;    // e.g. "digit"
  std::string output;  // the model output it reads; empty = same as name
  LossKind loss = LossKind::SoftmaxCrossEntropy;
  double weight = 1.0;
  std::vector<MetricKind> metrics;  // empty = the loss's usual metric (accuracy, or MAE for MSE)
  TargetKind target = TargetKind::ClassIndex;  // ignored for MSE/BCE (always Values)
  // Where the targets come from: a field of the data ("class", "value"; "left", "right" for
  // multi: pairs) or a derived-label rule ("parity", "brightness", "colour", "region"; see
  // datasets/labels.h). Empty: the task's name.
  std::string label;

  const std::string& output_name() const { return output.empty() ? name : output; }
  const std::string& label_source() const { return label.empty() ? name : label; }
  std::vector<MetricKind> effective_metrics() const;
  TargetKind effective_target() const;
};

}  // namespace polytask
