#include "engine/task_loss.h"

#include "engine/dispatch.h"
#include "kernels/loss.h"
#include "kernels/metrics.h"

namespace polytask {

namespace cpu = kernels::cpu;

TaskLoss::TaskLoss(const Task& task, const Shape& output_sample, const std::string& producer)
    : task_(task), metrics_(task.effective_metrics()), output_(output_sample) {
  const auto where = [&] {
    return cat("task '", task.name, "': ", loss_name(task.loss), " on output '",
               task.output_name(), "' of shape ", output_sample, " (from layer ", producer, ")");
  };
  if (!(task.weight >= 0) || task.weight > 1e30)
    fail(where(), ": the loss weight must be finite and non-negative, got ", task.weight);
  if (task.loss == LossKind::SoftmaxCrossEntropy) {
    if (output_sample.rank() != 1 || output_sample[0] < 2)
      fail(where(), ": softmax cross-entropy needs an output of shape (classes,) with at least "
                    "2 classes");
    classes_ = output_sample[0];
  }
  for (MetricKind m : metrics_)
    if (m == MetricKind::Accuracy && task.loss == LossKind::MeanSquaredError)
      fail(where(), ": accuracy is not defined for a regression (mse) task; use mae");
}

Shape TaskLoss::target_sample_shape() const {
  return task_.effective_target() == TargetKind::ClassIndex ? Shape{} : output_;
}

DType TaskLoss::target_dtype(DType compute) const {
  return task_.effective_target() == TargetKind::ClassIndex ? DType::I32 : compute;
}

std::vector<AuxSpec> TaskLoss::aux(int64_t batch) const {
  if (task_.loss == LossKind::SoftmaxCrossEntropy) return {AuxSpec{output_.with_batch(batch)}};
  return {};
}

void TaskLoss::forward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                       const Tensor& loss) const {
  const int64_t rows = pred.dim(0);
  dispatch_cpu_float("loss forward", pred, [&]<class T>() {
    switch (task_.loss) {
      case LossKind::SoftmaxCrossEntropy:
        if (task_.effective_target() == TargetKind::ClassIndex)
          cpu::softmax_cross_entropy_forward<T>(rows, classes_, pred.data<T>(),
                                                target.data<int32_t>(), aux[0].data<T>(),
                                                loss.data<T>());
        else
          cpu::softmax_cross_entropy_targets_forward<T>(rows, classes_, pred.data<T>(),
                                                        target.data<T>(), aux[0].data<T>(),
                                                        loss.data<T>());
        return;
      case LossKind::BinaryCrossEntropy:
        cpu::binary_cross_entropy_forward<T>(pred.numel(), pred.data<T>(), target.data<T>(),
                                             loss.data<T>());
        return;
      case LossKind::MeanSquaredError:
        cpu::mse_forward<T>(pred.numel(), pred.data<T>(), target.data<T>(), loss.data<T>());
        return;
    }
  });
}

void TaskLoss::backward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                        double seed, const Tensor& dpred, GradMode mode) const {
  const int64_t rows = pred.dim(0);
  dispatch_cpu_float("loss backward", pred, [&]<class T>() {
    switch (task_.loss) {
      case LossKind::SoftmaxCrossEntropy:
        if (task_.effective_target() == TargetKind::ClassIndex)
          cpu::softmax_cross_entropy_backward<T>(rows, classes_, aux[0].data<T>(),
                                                 target.data<int32_t>(), T(seed),
                                                 dpred.data<T>(), mode);
        else
          cpu::softmax_cross_entropy_targets_backward<T>(rows, classes_, aux[0].data<T>(),
                                                         target.data<T>(), T(seed),
                                                         dpred.data<T>(), mode);
        return;
      case LossKind::BinaryCrossEntropy:
        cpu::binary_cross_entropy_backward<T>(pred.numel(), pred.data<T>(), target.data<T>(),
                                              T(seed), dpred.data<T>(), mode);
        return;
      case LossKind::MeanSquaredError:
        cpu::mse_backward<T>(pred.numel(), pred.data<T>(), target.data<T>(), T(seed),
                             dpred.data<T>(), mode);
        return;
    }
  });
}

void TaskLoss::accumulate_metrics(const Tensor& pred, const Tensor& target,
                                  std::span<const Tensor>, std::vector<double>& sums,
                                  std::vector<double>& counts) const {
  const auto& metrics = metrics_;
  const int64_t rows = pred.dim(0);
  dispatch_cpu_float("metrics", pred, [&]<class T>() {
    for (size_t m = 0; m < metrics.size(); ++m) {
      if (metrics[m] == MetricKind::MeanAbsoluteError) {
        sums[m] += cpu::sum_abs_error<T>(pred.numel(), pred.data<T>(), target.data<T>());
        counts[m] += double(pred.numel());
      } else if (task_.loss == LossKind::BinaryCrossEntropy) {
        sums[m] += double(cpu::count_correct_binary<T>(pred.numel(), pred.data<T>(), target.data<T>()));
        counts[m] += double(pred.numel());
      } else if (task_.effective_target() == TargetKind::ClassIndex) {
        sums[m] += double(cpu::count_correct<T>(rows, classes_, pred.data<T>(), target.data<int32_t>()));
        counts[m] += double(rows);
      } else {
        sums[m] += double(cpu::count_correct_targets<T>(rows, classes_, pred.data<T>(), target.data<T>()));
        counts[m] += double(rows);
      }
    }
  });
}

}  // namespace polytask
