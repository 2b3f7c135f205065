#include "engine/task.h"

#include "kernels/error.h"

namespace polytask {

const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::SoftmaxCrossEntropy: return "softmax_cross_entropy";
    case LossKind::BinaryCrossEntropy: return "binary_cross_entropy";
    case LossKind::MeanSquaredError: return "mse";
  }
  return "?";
}

const char* metric_name(MetricKind k) {
  return k == MetricKind::Accuracy ? "accuracy" : "mae";
}

LossKind parse_loss(const std::string& text) {
  for (LossKind k : {LossKind::SoftmaxCrossEntropy, LossKind::BinaryCrossEntropy,
                     LossKind::MeanSquaredError})
    if (text == loss_name(k)) return k;
  fail("unknown loss '", text, "' (expected softmax_cross_entropy, binary_cross_entropy or mse)");
}

std::vector<MetricKind> Task::effective_metrics() const {
  if (!metrics.empty()) return metrics;
  return {loss == LossKind::MeanSquaredError ? MetricKind::MeanAbsoluteError : MetricKind::Accuracy};
}

TargetKind Task::effective_target() const {
  return loss == LossKind::SoftmaxCrossEntropy ? target : TargetKind::Values;
}

}  // namespace polytask
