#include "engine/task_loss.h"

#include <algorithm>

#include "engine/dispatch.h"
#include "kernels/epoch_stats.h"
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

void TaskLoss::ensure_device_buffers() const {
  if (bad_label_row_.defined()) return;
  bad_label_row_ = Tensor::zeros({1}, DType::I32, Device::CUDA);
  metric_sums_ = Tensor::zeros({int64_t(std::max<size_t>(metrics_.size(), 1))}, DType::F64,
                               Device::CUDA);
  device_sums_ = Tensor::zeros({1 + int64_t(metrics_.size())}, DType::F64, Device::CUDA);
  first_bad_label_ = Tensor::from_vector<double>({2}, {-1.0, -1.0}).to(Device::CUDA);
}

void TaskLoss::forward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                       const Tensor& loss, uint64_t step, const uint64_t* device_step) const {
  const int64_t rows = pred.dim(0);
  const bool class_index = task_.effective_target() == TargetKind::ClassIndex;
  dispatch(
      "loss forward", pred,
      [&]<class T>() {
        switch (task_.loss) {
          case LossKind::SoftmaxCrossEntropy:
            if (class_index)
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
      },
      [&](auto stream) {
        double* partials = cuda_reduce_partials();
        switch (task_.loss) {
          case LossKind::SoftmaxCrossEntropy:
            if (class_index) {
              ensure_device_buffers();
              kernels::cuda::softmax_cross_entropy_forward(
                  rows, classes_, pred.data<float>(), target.data<int32_t>(), aux[0].data<float>(),
                  loss.data<float>(), bad_label_row_.data<int32_t>(), partials, stream);
              if (deferred_checks_) {
                kernels::cuda::keep_first_bad_label(bad_label_row_.data<int32_t>(), int64_t(step),
                                                    first_bad_label_.data<double>(), stream,
                                                    device_step);
                return;
              }
              // The CPU reference throws naming the row; the kernel reports it, read here.
              const int32_t bad = bad_label_row_.to_vector<int32_t>()[0];
              if (bad >= 0) {
                const int32_t label = target.slice(bad, bad + 1).to_vector<int32_t>()[0];
                fail("softmax_cross_entropy: row ", bad, " has label ", label, ", outside [0, ",
                     classes_, ")");
              }
            } else {
              kernels::cuda::softmax_cross_entropy_targets_forward(
                  rows, classes_, pred.data<float>(), target.data<float>(), aux[0].data<float>(),
                  loss.data<float>(), partials, stream);
            }
            return;
          case LossKind::BinaryCrossEntropy:
            kernels::cuda::binary_cross_entropy_forward(pred.numel(), pred.data<float>(),
                                                        target.data<float>(), loss.data<float>(),
                                                        partials, stream);
            return;
          case LossKind::MeanSquaredError:
            kernels::cuda::mse_forward(pred.numel(), pred.data<float>(), target.data<float>(),
                                       loss.data<float>(), partials, stream);
            return;
        }
      });
}

void TaskLoss::backward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                        double seed, const Tensor& dpred, GradMode mode,
                        const float* device_seed) const {
  const int64_t rows = pred.dim(0);
  const bool class_index = task_.effective_target() == TargetKind::ClassIndex;
  dispatch(
      "loss backward", pred,
      [&]<class T>() {
        switch (task_.loss) {
          case LossKind::SoftmaxCrossEntropy:
            if (class_index)
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
      },
      [&](auto stream) {
        const kernels::cuda::LossScale scale =
            device_seed ? kernels::cuda::LossScale(device_seed) : kernels::cuda::LossScale(float(seed));
        switch (task_.loss) {
          case LossKind::SoftmaxCrossEntropy:
            if (class_index)
              kernels::cuda::softmax_cross_entropy_backward(rows, classes_, aux[0].data<float>(),
                                                            target.data<int32_t>(), scale,
                                                            dpred.data<float>(), mode, stream);
            else
              kernels::cuda::softmax_cross_entropy_targets_backward(
                  rows, classes_, aux[0].data<float>(), target.data<float>(), scale,
                  dpred.data<float>(), mode, stream);
            return;
          case LossKind::BinaryCrossEntropy:
            kernels::cuda::binary_cross_entropy_backward(pred.numel(), pred.data<float>(),
                                                         target.data<float>(), scale,
                                                         dpred.data<float>(), mode, stream);
            return;
          case LossKind::MeanSquaredError:
            kernels::cuda::mse_backward(pred.numel(), pred.data<float>(), target.data<float>(),
                                        scale, dpred.data<float>(), mode, stream);
            return;
        }
      });
}

void TaskLoss::add_metric_counts(const Tensor& pred, std::vector<double>& counts) const {
  // What each metric's sum counts: elements for MAE and binary accuracy, rows otherwise.
  for (size_t m = 0; m < metrics_.size(); ++m)
    counts[m] += metrics_[m] == MetricKind::MeanAbsoluteError ||
                         task_.loss == LossKind::BinaryCrossEntropy
                     ? double(pred.numel())
                     : double(pred.dim(0));
}

void TaskLoss::accumulate_metrics(const Tensor& pred, const Tensor& target,
                                  std::span<const Tensor>, std::vector<double>& sums,
                                  std::vector<double>& counts) const {
  const auto& metrics = metrics_;
  const int64_t rows = pred.dim(0);
  const bool class_index = task_.effective_target() == TargetKind::ClassIndex;
  add_metric_counts(pred, counts);
  dispatch(
      "metrics", pred,
      [&]<class T>() {
        for (size_t m = 0; m < metrics.size(); ++m) {
          if (metrics[m] == MetricKind::MeanAbsoluteError)
            sums[m] += cpu::sum_abs_error<T>(pred.numel(), pred.data<T>(), target.data<T>());
          else if (task_.loss == LossKind::BinaryCrossEntropy)
            sums[m] += double(cpu::count_correct_binary<T>(pred.numel(), pred.data<T>(),
                                                           target.data<T>()));
          else if (class_index)
            sums[m] += double(cpu::count_correct<T>(rows, classes_, pred.data<T>(),
                                                    target.data<int32_t>()));
          else
            sums[m] += double(cpu::count_correct_targets<T>(rows, classes_, pred.data<T>(),
                                                            target.data<T>()));
        }
      },
      [&](auto stream) {
        ensure_device_buffers();
        metric_sums_.zero();
        add_device_metric_sums(pred, target, metric_sums_.data<double>(), stream);
        const std::vector<double> batch = metric_sums_.to_vector<double>();
        for (size_t m = 0; m < metrics.size(); ++m) sums[m] += batch[m];
      });
}

#if defined(POLYTASK_WITH_CUDA)
void TaskLoss::add_device_metric_sums(const Tensor& pred, const Tensor& target, double* sums,
                                      kernels::cuda::Stream stream) const {
  const int64_t rows = pred.dim(0);
  double* partials = cuda_reduce_partials();
  for (size_t m = 0; m < metrics_.size(); ++m) {
    double* total = sums + m;
    if (metrics_[m] == MetricKind::MeanAbsoluteError)
      kernels::cuda::sum_abs_error(pred.numel(), pred.data<float>(), target.data<float>(), total,
                                   partials, stream);
    else if (task_.loss == LossKind::BinaryCrossEntropy)
      kernels::cuda::count_correct_binary(pred.numel(), pred.data<float>(), target.data<float>(),
                                          total, partials, stream);
    else if (task_.effective_target() == TargetKind::ClassIndex)
      kernels::cuda::count_correct(rows, classes_, pred.data<float>(), target.data<int32_t>(),
                                   total, partials, stream);
    else
      kernels::cuda::count_correct_targets(rows, classes_, pred.data<float>(),
                                           target.data<float>(), total, partials, stream);
  }
}

void TaskLoss::accumulate_on_device(const Tensor& pred, const Tensor& target,
                                    const Tensor& loss) const {
  if (pred.device() != Device::CUDA || pred.dtype() != DType::F32)
    fail("task '", task_.name, "': device sums need f32 outputs on the GPU, got ", pred.describe());
  ensure_device_buffers();
  double* sums = device_sums_.data<double>();
  kernels::cuda::add_scaled(loss.data<float>(), double(pred.dim(0)), sums, cuda_stream());
  add_device_metric_sums(pred, target, sums + 1, cuda_stream());
}

std::vector<double> TaskLoss::take_device_sums() const {
  if (!device_sums_.defined()) return std::vector<double>(1 + metrics_.size(), 0.0);
  std::vector<double> sums = device_sums_.to_vector<double>();
  device_sums_.zero();
  const std::vector<double> bad = first_bad_label_.to_vector<double>();
  if (bad[0] >= 0) {
    first_bad_label_.copy_from(Tensor::from_vector<double>({2}, {-1.0, -1.0}));
    fail("task '", task_.name, "': row ", int64_t(bad[1]), " of the batch at step ",
         int64_t(bad[0]) + 1, " has a class label outside [0, ", classes_, ")");
  }
  return sums;
}
#else
void TaskLoss::add_device_metric_sums(const Tensor&, const Tensor&, double*,
                                      kernels::cuda::Stream) const {
  fail("device metrics: this build has no CUDA");
}
void TaskLoss::accumulate_on_device(const Tensor&, const Tensor&, const Tensor&) const {
  fail("device sums: this build has no CUDA");
}
std::vector<double> TaskLoss::take_device_sums() const {
  return std::vector<double>(1 + metrics_.size(), 0.0);
}
#endif

}  // namespace polytask
