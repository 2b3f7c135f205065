// A model compiled for training: the plan (which layer calls form the shared trunk, which form
// each task's head, one buffer per activation and per gradient, who overwrites and who
// accumulates) and its replay, step after step, without allocating.
//
// One training step:
//   forward(n, training=true): every layer call once — the trunk once — then every task loss;
//   backward(): each task's loss seeded by the fan-out's balancer (static: its loss weight), its
//               head backward into the fan-out's per-task buffer, FanOut::combine into dz,
//               then the trunk backward once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/communicator.h"
#include "engine/fan_out.h"
#include "engine/graph.h"
#include "engine/task.h"
#include "kernels/precision.h"

namespace polytask {

// Soft parameter sharing (kernels/soft_sharing.h): groups of layers — one copy per task —
// whose corresponding trainable parameters an L2 penalty of this strength pulls together.
struct SoftSharing {
  double strength = 0;  // λ in (λ/2)·Σ_{i<j}‖W_i − W_j‖²; 0: off
  std::vector<std::vector<std::string>> groups;  // layer names, 2 to 16 per group
};

struct NetworkOptions {
  int64_t max_batch = 128;  // buffers are sized for this; any smaller batch runs in them
  Device device = Device::CPU;
  DType dtype = DType::F32;  // F64 for gradient checks on the CPU
  uint64_t seed = 0;         // parameter initialisation and dropout masks
  // What the GPU's GEMM and convolution kernels multiply with (kernels/precision.h): FP32, or
  // the tensor cores with TF32 or BF16 operands (FP32 storage and accumulation either way).
  kernels::MathPrecision precision = kernels::MathPrecision::FP32;
  // The shared representation z, by value name (a layer's name). Empty: the value closest to
  // the outputs through which every path from the inputs to every task output passes.
  std::string fan_out;
  SoftSharing soft_sharing;
};

// All parameters of a network, trainable ones in one flat buffer (so an optimiser updates them
// in one call), with their gradients in another of the same layout; non-trainable state
// (BatchNorm running statistics) in a third.
struct ParameterSet {
  std::vector<Parameter*> all;  // graph order: the checkpoint order
  Tensor values;                // (trainable_count,)
  Tensor grads;                 // (trainable_count,)
  Tensor state;                 // (state_count,)
  int64_t trainable_count = 0;
  int64_t state_count = 0;
};

// Running sums of a task's loss and metrics over the batches of an epoch.
struct TaskTotals {
  double loss_sum = 0;  // Σ batch_loss · batch_size
  int64_t examples = 0;
  std::vector<double> metric_sums, metric_counts;
  double loss() const { return examples ? loss_sum / double(examples) : 0.0; }
  double metric(size_t m) const { return metric_counts[m] ? metric_sums[m] / metric_counts[m] : 0.0; }
};

class Network {
 public:
  Network(const Model& model, std::vector<Task> tasks, NetworkOptions options = {});
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  const Model& model() const;
  const NetworkOptions& options() const;
  const std::vector<Task>& tasks() const;

  // Fill these before a step: rows [0, n) of model input i, (max_batch, *shape), and of task
  // t's targets, (max_batch,) class indices or (max_batch, *output) values.
  const Tensor& input_buffer(size_t i) const;
  size_t input_index(const std::string& name) const;
  const Tensor& target_buffer(size_t t) const;

  // Runs every layer call for the first n rows; with_losses also runs every task's loss (the
  // targets must be filled). training selects batch statistics and dropout.
  void forward(int64_t n, bool training, bool with_losses = true);
  // Backward for the batch of the last training forward: fills parameters().grads.
  void backward();

  // Results of the last forward.
  double task_loss(size_t t) const;
  // Σ_t w_t · L_t + the soft-sharing penalty: the quantity backward differentiates.
  double total_loss() const;
  // The soft-sharing penalty at the current parameters (0 without soft sharing); reads the
  // tied parameters (a copy back from the GPU).
  double soft_sharing_penalty() const;
  Tensor output(const std::string& name) const;  // (n, *shape)
  void accumulate(std::vector<TaskTotals>& totals) const;
  std::vector<TaskTotals> make_totals() const;

  // The GPU's way to keep an epoch's totals: accumulate_on_device adds the last forward's losses
  // and metric sums to sums kept on the device (no read back); take_device_totals reads them
  // (one round trip), adds them to `totals` and starts new sums. With deferred checks on, a bad
  // class label is reported there too instead of at its step (which would cost a read back per
  // step). CUDA networks only.
  void accumulate_on_device(std::vector<TaskTotals>& totals) const;
  void take_device_totals(std::vector<TaskTotals>& totals) const;
  void set_deferred_checks(bool deferred);
  bool deferred_checks() const;
  // Adds the last forward's examples and metric counts (host numbers) to totals.
  void count_batch(std::vector<TaskTotals>& totals) const;

  // CUDA graphs (engine/cuda_graph.h) freeze kernel arguments at capture. With staged scalars
  // on, what changes from step to step — the step number (dropout's draws, the label check)
  // and the loss seeds — is read on the device, from memory stage_step() fills before each
  // step without waiting (one copy through the pinned ring of engine/host_staging.h).
  // replayed_step() does a replayed step's host bookkeeping (the step count, the fan-out's
  // counts, totals' counts), which a replay skips. Only for f32 networks on the GPU whose
  // balancer reads nothing back per step (graph_capturable(): static weights).
  bool graph_capturable() const;
  void set_staged_scalars(bool staged);
  bool staged_scalars() const;
  void stage_step();
  void replayed_step(int64_t n, std::vector<TaskTotals>& totals);
  // The same for a replayed inference forward with device sums (no step is taken).
  void replayed_evaluation(int64_t n, std::vector<TaskTotals>& totals);

  // Data-parallel training (engine/communicator.h). With a communicator of several ranks, each
  // training step runs this rank's shard of a global batch: set_shard(first_row, rows,
  // global_rows) before its forward(rows, ...). Dropout then draws by global row, and backward
  // makes the step the global batch's on every rank: the tasks' losses (for the balancer) and
  // the fan-out's Gram matrix are summed over the ranks before the balancer decides, each loss
  // is seeded with its share rows / global_rows, and the parameter gradients are summed over
  // the ranks at the end — so every rank holds the gradient one process would compute on the
  // whole global batch (up to the order of float sums) and takes the same optimiser step.
  // BatchNorm normalises with this rank's rows, or with every rank's when sync_batchnorm.
  // Null (the default) or SingleProcess: a single process, which pays nothing for this.
  // Set it before fit() (a CUDA graph captured earlier would keep the old one's buffers).
  void set_communicator(Communicator* communicator, bool sync_batchnorm = false);
  Communicator* communicator() const;
  bool data_parallel() const;  // a communicator other than SingleProcess
  bool sync_batchnorm() const;
  void set_shard(int64_t first_row, int64_t rows, int64_t global_rows);
  // Every rank's parameters and non-trainable state become rank 0's (the start of training).
  void broadcast_parameters();
  // The non-trainable state (BatchNorm's running statistics, which per-rank statistics let
  // drift apart) becomes its mean over the ranks: each epoch's end, before evaluating and
  // saving, so every rank evaluates and would save the same model.
  void average_state();

  FanOut& fan_out();
  const FanOut& fan_out() const;
  ParameterSet& parameters();
  const ParameterSet& parameters() const;
  // Re-draws every parameter from `seed` (Glorot-uniform kernels, zero biases, BatchNorm
  // ones/zeros) and resets BatchNorm running statistics.
  void initialize(uint64_t seed);

  // Steps run so far (keys the dropout masks); restored from checkpoints.
  uint64_t step() const;
  void set_step(uint64_t step);

  // How many times the calls of a layer ran forward (tests: the trunk runs once per step).
  int64_t forward_calls(const std::string& layer_name) const;
  // Which calls form the trunk and which each head (for --verbose and tests).
  std::string plan_summary() const;

 private:
  struct Plan;
  std::unique_ptr<Plan> plan_;
};

}  // namespace polytask
